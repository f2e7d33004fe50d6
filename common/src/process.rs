//! Other processes, as Linux's /proc shows them.

/// Whether `pid` has ended: gone, or a zombie its parent has not reaped yet
/// (it holds no resources and will never run again).
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // The state follows the command name, which may itself hold ')'.
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_pid_that_never_was_has_ended() {
        assert!(!is_zombie(std::process::id()));
        assert!(is_zombie(u32::MAX));
    }
}
