//! Every raw system call the servers crate (and the stack's supervisor) makes, each with its
//! safety argument, so nothing else needs `unsafe` or `libc`.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The signals Surge sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Polite stop.
    Term,
    /// PostgreSQL's fast shutdown.
    Int,
    /// nginx's graceful stop.
    Quit,
    /// Reload configuration.
    Hup,
    /// Stop now, no cleanup (drills' crash).
    Kill,
    /// Freeze.
    Stop,
    /// Thaw.
    Cont,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Int => libc::SIGINT,
            Signal::Quit => libc::SIGQUIT,
            Signal::Hup => libc::SIGHUP,
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }
}

/// Send `signal` to process `pid`. Pids 0 and 1 are refused: kill(2) reads 0 as "my own
/// process group" and 1 is init, never a server of ours.
pub fn send(pid: u32, signal: Signal) -> std::io::Result<()> {
    if pid <= 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("pid {pid} is never a process to signal"),
        ));
    }
    let pid = i32::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, signal.raw()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// When process `pid` started (clock ticks since boot, field 22 of `/proc/PID/stat`): with
/// the pid, it names one process, never a later one that reuses the number.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` exists (and may be signalled by us).
pub fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(pid, 0) sends nothing; it only checks for existence.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0
}

/// Whether we run as root (PostgreSQL refuses to; nginx then needs `user root`).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// Have the kernel kill the child if the thread that spawned it dies, even without running
/// destructors (a test killed mid-way must not leave servers behind).
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Start the child in a new session, so it outlives the terminal that started it.
pub fn detach(command: &mut Command) {
    // SAFETY: setsid(2) is async-signal-safe and touches no parent memory; it only fails
    // for a process-group leader, which a freshly forked child is not.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}
