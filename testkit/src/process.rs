//! A program under test, with its stderr collected line by line so a test can
//! wait for a log line instead of sleeping.

use anyhow::{anyhow, bail, Result};
use crossbeam_channel::Receiver;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

pub struct Spawned {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Spawned {
    pub fn start(command: &mut Command) -> Result<Spawned> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (sender, lines) = crossbeam_channel::unbounded();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let err_pipe = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr pipe"))?;
        let out_pipe = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let (err_log, out_log) = (stderr.clone(), stdout.clone());
        let out_sender = sender.clone();
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                err_log.lock().map(|mut log| log.push(line.clone())).ok();
                let _ = sender.send(line);
            }
        });
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                out_log.lock().map(|mut log| log.push(line.clone())).ok();
                let _ = out_sender.send(line);
            }
        });
        Ok(Spawned {
            child,
            lines,
            stderr,
            stdout,
            readers: vec![err_reader, out_reader],
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for an output line (stdout or stderr) containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(_) => bail!(
                    "no line containing {needle:?} within {timeout:?}; stderr so far:\n{}",
                    self.stderr().join("\n")
                ),
            }
        }
    }

    pub fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {} failed", self.pid());
        }
        Ok(())
    }

    /// Waits for the process to exit and its output to be read; kills it
    /// and fails after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match self.child.wait_timeout(timeout)? {
            Some(status) => {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                Ok(status)
            }
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "still running after {timeout:?}; stderr:\n{}",
                    self.stderr().join("\n")
                )
            }
        }
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
