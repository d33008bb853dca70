//! The helper's confinement on Linux, applied to itself before it reads its input: resource
//! limits, then Landlock (no file system, no TCP, no signals or abstract sockets outside), then a
//! seccomp allow-list that leaves reading stdin, writing stdout and stderr, memory and exiting.

use landlock::{Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetStatus, Scope, ABI};
use rustix::process::{setrlimit, Resource, Rlimit, Signal};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};
use std::collections::BTreeMap;

/// Confines this process: `memory` bytes of address space, `cpu_seconds` of CPU (then SIGXCPU,
/// and SIGKILL a second later), no new files, no core dump, killed with its parent.
pub(crate) fn confine(memory: u64, cpu_seconds: u64) -> Result<(), String> {
    // A helper whose kiosk died has no one to answer to.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| format!("parent-death signal: {e}"))?;
    landlock()?;
    let limit = |resource, soft: u64, hard: u64| {
        setrlimit(resource, Rlimit { current: Some(soft), maximum: Some(hard) })
            .map_err(|e| format!("{resource:?} limit: {e}"))
    };
    // Decoded clinical images must never land on disk in a core file.
    limit(Resource::Core, 0, 0)?;
    limit(Resource::Fsize, 0, 0)?;
    limit(Resource::Nofile, 0, 0)?;
    limit(Resource::As, memory, memory)?;
    limit(Resource::Cpu, cpu_seconds, cpu_seconds + 1)?;
    seccomp()
}

/// Everything Landlock can deny, with no rule allowing any of it back. On a kernel without Landlock
/// (or an older ABI) the rest is still denied by seccomp; the status is logged by the parent's
/// tests, not required here.
fn landlock() -> Result<(), String> {
    let abi = ABI::V6;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("Landlock: {e}"))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        tracing::debug!("Landlock is not available on this kernel; seccomp alone confines the helper");
    }
    Ok(())
}

fn arg_is(index: u8, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, value).map_err(|e| e.to_string())
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// The allow-list; anything else kills the process (SIGSYS). The JPEG decoder runs a thread per
/// colour component, so threads may be made, but not processes: `clone` only with CLONE_THREAD,
/// and `clone3` (whose flags sit behind a pointer seccomp cannot read) answers ENOSYS, which makes
/// the C library fall back to `clone`.
fn seccomp() -> Result<(), String> {
    let arch: seccompiler::TargetArch = std::env::consts::ARCH.try_into().map_err(|e| format!("seccomp: {e:?}"))?;
    // A filter of its own, since a filter has one action for its matches; of two filters' verdicts
    // the kernel takes the stricter, so ENOSYS here beats the allow-list's "allow".
    let mut no_clone3 = BTreeMap::new();
    no_clone3.insert(libc::SYS_clone3, Vec::new());
    install(SeccompFilter::new(no_clone3, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch))?;
    let no_exec = || {
        SeccompCondition::new(2, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64), 0)
            .map_err(|e| e.to_string())
    };
    let pid = u64::from(rustix::process::getpid().as_raw_nonzero().get().unsigned_abs());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // Unconditional: memory, signals for a clean abort, time, randomness for hash maps, exit.
    for call in [
        libc::SYS_brk,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_close,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigaction,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        libc::SYS_clock_gettime,
        libc::SYS_getrandom,
        libc::SYS_sched_yield,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ] {
        rules.insert(call, Vec::new());
    }
    // Memory may be mapped but never made executable.
    rules.insert(libc::SYS_mmap, vec![rule(vec![no_exec()?])?]);
    rules.insert(libc::SYS_mprotect, vec![rule(vec![no_exec()?])?]);
    // Only the three standard descriptors: an inherited socket stays unusable.
    rules.insert(libc::SYS_read, vec![rule(vec![arg_is(0, 0)?])?]);
    rules.insert(libc::SYS_write, vec![rule(vec![arg_is(0, 1)?])?, rule(vec![arg_is(0, 2)?])?]);
    // abort() signals itself, and only itself.
    rules.insert(libc::SYS_tgkill, vec![rule(vec![arg_is(0, pid)?])?]);
    // Threads (see above): a clone without CLONE_THREAD would be a new process.
    let thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        libc::CLONE_THREAD as u64,
    )
    .map_err(|e| e.to_string())?;
    rules.insert(libc::SYS_clone, vec![rule(vec![thread])?]);
    rules.insert(libc::SYS_clone3, Vec::new());
    // A new thread names itself; no other prctl.
    rules.insert(libc::SYS_prctl, vec![rule(vec![arg_is(0, libc::PR_SET_NAME as u64)?])?]);
    for call in [libc::SYS_set_robust_list, libc::SYS_rseq, libc::SYS_sched_getaffinity] {
        rules.insert(call, Vec::new());
    }
    install(SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, arch))
}

fn install(filter: Result<SeccompFilter, seccompiler::BackendError>) -> Result<(), String> {
    let filter = filter.map_err(|e| format!("seccomp: {e}"))?;
    let program: seccompiler::BpfProgram = filter.try_into().map_err(|e| format!("seccomp: {e:?}"))?;
    seccompiler::apply_filter(&program).map_err(|e| format!("seccomp: {e}"))
}
