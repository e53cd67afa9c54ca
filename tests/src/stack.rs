//! The local stack in a temporary directory, for scenarios on the whole shop.

use surge_stack::{Stack, StackOptions};

pub struct Fixture {
    pub stack: Stack,
    // Declared last: removed after the stack stopped.
    _dir: tempfile::TempDir,
}

/// A stack without monitoring or autoscaling unless `tweak` turns them on.
pub fn stack(tweak: impl FnOnce(&mut StackOptions)) -> anyhow::Result<Fixture> {
    let dir = tempfile::Builder::new().prefix("surge-stack-").tempdir()?;
    let mut options = StackOptions::for_checkout(dir.path())?;
    options.monitoring = false;
    options.autoscale = None;
    options.payment_failure_rate = 0.0;
    tweak(&mut options);
    Ok(Fixture {
        stack: Stack::start(options)?,
        _dir: dir,
    })
}
