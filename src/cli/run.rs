//! `sse-logs run -- COMMAND`: a command's output into a log, ending it with how the command ended.
//!
//! The command's standard output and error share one pipe, so their lines reach the log in the
//! order the command wrote them; they go through `push`'s reader and writer (batches, retries,
//! look-ups: each line exactly once) and are echoed to this process's standard output as read.
//! Ctrl-C and SIGTERM are handled here and passed on to the command, which decides when to
//! stop; the log then says `cancelled`. `run` exits with the command's status.

use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::push::{self, Masks, Writer};
use super::PushArgs;
use crate::log::{Ending, Outcome};

/// The status of a command that could not be started, as a shell reports it.
const NOT_STARTED: i64 = 127;

/// Runs `command` into the log named by `to`; the exit code is the command's.
pub(super) fn main(to: PushArgs, command: Vec<String>) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let (code, failure) = runtime.block_on(run(to, command));
    if let Some(message) = failure {
        eprintln!("sse-logs: {message}");
    }
    ExitCode::from(code)
}

/// The exit code, and what went wrong with the log or the command, if anything.
async fn run(to: PushArgs, command: Vec<String>) -> (u8, Option<String>) {
    // Handlers first: from now on Ctrl-C no longer stops `run`, only what it forwards to.
    let (Ok(mut interrupts), Ok(mut terms)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return (1, Some("cannot handle Ctrl-C and SIGTERM".into()));
    };
    let writer = match to.sink().await {
        Ok((sink, key, masks)) => match Writer::new(sink, key).await {
            Ok(writer) => (writer, masks),
            Err(message) => return (1, Some(message)),
        },
        Err(message) => return (1, Some(message)),
    };
    let (mut writer, masks) = writer;
    let (mut child, output) = match start(&command) {
        Ok(started) => started,
        Err(err) => {
            let message = format!("cannot run {:?}: {err}", command[0]);
            let failed = Ending { outcome: Some(Outcome::Failed), exit_code: Some(NOT_STARTED) };
            let logged = writer.append(vec![format!("sse-logs: {message}")], Some(failed)).await;
            let message = match logged {
                Ok(()) => message,
                Err(log) => format!("{message}; and the log: {log}"),
            };
            return (NOT_STARTED as u8, Some(message));
        }
    };
    let pid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
    let forwarded = Arc::new(AtomicBool::new(false));
    let (ended_tx, mut ended) = watch::channel(None::<Ending>);
    let waiter = {
        let forwarded = forwarded.clone();
        async move {
            let status = child.wait().await;
            let ending = match status {
                Ok(status) => ending_of(status, forwarded.load(Ordering::SeqCst)),
                // Waiting failed (not seen in practice): the command's end is unknown.
                Err(_) => Ending { outcome: None, exit_code: None },
            };
            let _ = ended_tx.send(Some(ending));
        }
    };
    tokio::spawn(async move {
        let mut wait = Box::pin(waiter);
        let mut exited = false;
        loop {
            let sent = tokio::select! {
                () = &mut wait, if !exited => { exited = true; continue }
                _ = interrupts.recv() => Signal::SIGINT,
                _ = terms.recv() => Signal::SIGTERM,
            };
            if exited {
                // The command is gone and only the log's end is being written (it may be retrying
                // through an outage): the signal is for `run` itself.
                eprintln!("sse-logs: stopped before the log's end was written");
                std::process::exit(128 + sent as i32);
            }
            forwarded.store(true, Ordering::SeqCst);
            if let Some(pid) = pid {
                let _ = kill(pid, sent);
            }
        }
    });
    let (tx, rx) = push::lines();
    tokio::spawn(push::read_lines(output, tx, Masks::new(masks), true));
    let finish = async {
        let ending = ended.wait_for(Option::is_some).await.ok().and_then(|e| *e);
        Some(ending.unwrap_or_default())
    };
    let logged = writer.forward(rx, finish).await;
    // The command's status, also when the log could not be written to (its reader goes on
    // echoing, so the command is never blocked by that).
    let ending = ended.wait_for(Option::is_some).await.ok().and_then(|e| *e).unwrap_or_default();
    let code = ending.exit_code.map_or(1, |code| u8::try_from(code & 0xff).unwrap_or(1));
    match logged {
        Ok(()) => (code, None),
        Err(message) => (if code == 0 { 1 } else { code }, Some(message)),
    }
}

/// Starts the command with standard output and error on one pipe; returns its read end.
fn start(command: &[String]) -> std::io::Result<(tokio::process::Child, tokio::net::unix::pipe::Receiver)> {
    let (reader, writer) = std::io::pipe()?;
    let errors = writer.try_clone()?;
    // The command is dropped at the end of this function with its copies of the write end, so
    // the read end sees EOF once the command (and whatever it started) has closed its own.
    let child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(errors))
        .spawn()?;
    let output = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into())?;
    Ok((child, output))
}

/// How a command ended. Stopped by a signal that stops work (Ctrl-C, SIGTERM, SIGKILL, a
/// hang-up), or exiting non-zero after `run` passed one on: `cancelled`. A crash (SIGSEGV,
/// SIGABRT...) is `failed`. The exit code is the status a shell reports (128 + the signal).
fn ending_of(status: ExitStatus, forwarded: bool) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        let stopped = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL, Signal::SIGHUP]
            .iter()
            .any(|s| *s as i32 == signal);
        let outcome = if stopped || forwarded { Outcome::Cancelled } else { Outcome::Failed };
        return Ending { outcome: Some(outcome), exit_code: Some(128 + i64::from(signal)) };
    }
    let code = status.code().map(i64::from);
    let outcome = match code {
        Some(0) => Outcome::Succeeded,
        _ if forwarded => Outcome::Cancelled,
        _ => Outcome::Failed,
    };
    Ending { outcome: Some(outcome), exit_code: code }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn ending(outcome: Outcome, code: i64) -> Ending {
        Ending { outcome: Some(outcome), exit_code: Some(code) }
    }

    #[test]
    fn a_status_becomes_the_outcome_a_person_would_name() {
        // Raw wait statuses: exit code n is n << 8, a signal is its number.
        assert_eq!(ending_of(ExitStatus::from_raw(0), false), ending(Outcome::Succeeded, 0));
        assert_eq!(ending_of(ExitStatus::from_raw(3 << 8), false), ending(Outcome::Failed, 3));
        assert_eq!(ending_of(ExitStatus::from_raw(130 << 8), true), ending(Outcome::Cancelled, 130));
        assert_eq!(ending_of(ExitStatus::from_raw(0), true), ending(Outcome::Succeeded, 0));
        assert_eq!(ending_of(ExitStatus::from_raw(9), false), ending(Outcome::Cancelled, 137));
        assert_eq!(ending_of(ExitStatus::from_raw(11), false), ending(Outcome::Failed, 139));
    }
}
