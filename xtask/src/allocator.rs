//! glibc's allocator, set for training before the program allocates anything.
//!
//! candle allocates every operation's output and its backward pass starts each gradient as a
//! fresh zero tensor. With glibc's defaults, blocks from 128 KiB up come from `mmap` and go back
//! to the system when freed, and the heap's top is trimmed, so every step faults its tensors in
//! again page by page; a zero tensor that is only read maps the kernel's zero page, and the next
//! write there costs a copy-on-write fault and a TLB shootdown on every core. Serving blocks up
//! to 32 MiB (glibc's ceiling) from the heap and never trimming it keeps a step's pages mapped
//! for the next step: MiniLM's training step −22 % (docs/cpu-speed.md). The price is that the
//! process keeps the memory of its largest step until it ends, which a training run reaches
//! every step anyway.
//!
//! The settings are environment variables that glibc reads at start, so the program starts
//! itself again with them set (the same process: `exec`) unless the user chose any of them.

/// The variables set, with their values.
const SETTINGS: [(&str, &str); 2] = [
    // 32 MiB: the largest threshold glibc accepts on 64-bit systems.
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    // 16 GiB: the heap is never trimmed.
    ("MALLOC_TRIM_THRESHOLD_", "17179869184"),
];

/// Set when this program set [`SETTINGS`] itself, so that the processes it starts (PyTorch's
/// side of `speed`) get the environment the user gave.
const MARKER: &str = "LRLAB_ALLOCATOR_SET";

/// Starts this program again with [`SETTINGS`] in its environment unless any of them (or the
/// marker) is there already; on systems other than Linux with glibc, or if the restart fails
/// (said on stderr), carries on as it is.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let chosen = SETTINGS
            .iter()
            .any(|(name, _)| std::env::var_os(name).is_some());
        if chosen || std::env::var_os(MARKER).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let program = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let error = std::process::Command::new(&exe)
            .arg0(program)
            .args(args)
            .envs(SETTINGS)
            .env(MARKER, "1")
            .exec();
        eprintln!(
            "warning: could not restart with glibc's allocator settings ({error}); \
             training will run slower"
        );
    }
}

/// Takes the settings this program made out of `command`'s environment, so that it runs in the
/// environment the user gave.
pub fn restore_for(command: &mut std::process::Command) {
    remove_settings(command, std::env::var_os(MARKER).is_some());
}

/// Removes [`SETTINGS`] and the marker from `command`'s environment when `set_by_us`.
fn remove_settings(command: &mut std::process::Command, set_by_us: bool) {
    if set_by_us {
        command.env_remove(MARKER);
        for (name, _) in SETTINGS {
            command.env_remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn removed(set_by_us: bool) -> Vec<String> {
        let mut command = std::process::Command::new("true");
        remove_settings(&mut command, set_by_us);
        command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_child_gets_the_users_environment_back() {
        let mut expected: Vec<_> = SETTINGS.iter().map(|(name, _)| name.to_string()).collect();
        expected.push(MARKER.to_owned());
        let mut removed_ours = removed(true);
        removed_ours.sort();
        expected.sort();
        assert_eq!(removed_ours, expected);
        // Settings the user made are theirs: passed on untouched.
        assert!(removed(false).is_empty());
        assert!(
            SETTINGS
                .iter()
                .all(|(name, _)| !OsStr::new(name).is_empty())
        );
    }
}
