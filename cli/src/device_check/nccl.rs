//! NCCL on one GPU: a world of size 1 (NCCL refuses two ranks on one device), its unique id
//! through the host communicator as in a multi-process run, and each device collective of
//! `NcclWorld` on a small tensor, whose result must equal the input exactly (one rank: a
//! gather, a sum and a broadcast are copies). A build without the `nccl` feature records the
//! check as failed, saying so.

use std::time::Instant;

use candle_core::Device;

use super::Report;

#[cfg(feature = "nccl")]
pub fn check(device: &Device, report: &mut Report) {
    use cafe_framework::dist::{solo, Communicator, NcclWorld};
    use cafe_framework::nn::init::uniform;
    use cafe_framework::rng::rng_from_seed;
    use cafe_framework::Result;
    use candle_core::{DType, Tensor};

    use super::{rel_err, Tolerance};

    const EXACT: Tolerance = Tolerance {
        value: 0.0,
        why: "one rank: every collective is a copy",
    };

    let started = Instant::now();
    let world = match NcclWorld::new(solo(), device) {
        Ok(w) => w,
        Err(e) => return report.failed("nccl", "world of size 1 (ncclCommInitRank)", &e, started),
    };
    let run = |name: &str, f: &dyn Fn(&Tensor) -> Result<Tensor>, report: &mut Report| {
        let started = Instant::now();
        let outcome = (|| -> Result<f64> {
            let t = uniform(&[3, 5], 1.0, DType::F32, &Device::Cpu, &mut rng_from_seed(11))?.to_device(device)?;
            rel_err(&f(&t)?, &t)
        })();
        match outcome {
            Ok(e) => report.record("nccl", name, e, EXACT, started),
            Err(e) => report.failed("nccl", name, &e, started),
        }
    };
    run("all_gather_rows", &|t| world.all_gather_rows(t), report);
    run("all_reduce_sum", &|t| world.all_reduce_sum(t), report);
    run("broadcast from rank 0", &|t| world.broadcast(0, t), report);
}

#[cfg(not(feature = "nccl"))]
pub fn check(_: &Device, report: &mut Report) {
    report.failed(
        "nccl",
        "world of size 1",
        &cafe_framework::Error::Other("this binary was built without the `nccl` feature".into()),
        Instant::now(),
    );
}
