//! The small files of every tensor-file format kept in `framework/tests/golden/`: the content
//! each was made from, so a test can write that content again and compare bytes, or load the
//! file and compare values.
//!
//! The files were written by the code of commit f9c9bac, before `tensor_file.rs` existed
//! (`CAFE_WRITE_GOLDEN=1 cargo test -p cafe-framework --test tensor_file_golden`). The
//! synthetic set's bytes must never change; the checkpoint, expert and teacher files are the
//! older, unsorted headers (safetensors' `HashMap` order) that cafe-lab must go on reading.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cafe_framework::checkpoint::{Checkpoint, CheckpointState, LearnedCheckpoint};
use cafe_framework::fuzz::ParamHolder;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::synthetic::{Learned, SyntheticSet};
use cafe_framework::teacher::{Teacher, TeacherInfo};
use cafe_framework::traits::scheduler::IterationReport;
use cafe_framework::trajectory::{ExpertRecord, ExpertTrajectory};
use cafe_framework::Architecture;
use cafe_framework::ImageShape;
use candle_core::{DType, Device, Tensor, Var};
use serde_json::json;

/// The folder of the golden files.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

fn tensor(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
}

/// Values that exercise the bytes: signs, a negative zero, a subnormal, infinities, a NaN.
const ODD: [f32; 6] = [-0.0, 1.0e-40, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 3.25];

/// A synthetic set of 2 classes x 2 images of 1x2x3, with learned extras whose names sort
/// around `__metadata__` (`Aux` before it, the others after) and metadata that needs escaping.
pub fn synthetic_set() -> SyntheticSet {
    let images: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 4.0).chain(ODD).take(24).collect();
    let mut images = images;
    images[..ODD.len()].copy_from_slice(&ODD);
    let learned = |name: &str, t: Tensor| Learned {
        name: name.into(),
        var: Var::from_tensor(&t).unwrap(),
    };
    SyntheticSet {
        images: Var::from_tensor(&tensor(&images, &[4, 1, 2, 3])).unwrap(),
        labels: Tensor::from_vec(vec![0u32, 0, 1, 1], 4, &Device::Cpu).unwrap(),
        learned: vec![
            learned("lr", tensor(&[0.01], &[])),
            learned(
                "label_logits",
                tensor(&[1.0, -1.0, 0.5, 0.25, -2.0, 2.0, 0.0, 1.5], &[4, 2]),
            ),
            learned("Aux", tensor(&[7.0, 8.0], &[2])),
            learned("zeta", tensor(&[1.0, 2.0, 3.0], &[3, 1])),
        ],
        ipc: 2,
        classes: 2,
        shape: ImageShape::new(1, 2, 3),
        mean: vec![0.5],
        std: vec![0.25],
        metadata: BTreeMap::from([
            ("format".into(), "cafe-lab synthetic set 1".into()),
            ("config".into(), r#"{"dataset":"shapes","ipc":2}"#.into()),
            ("note".into(), "ünïcode \"quoted\"\nnew line\ttab \\ slash".into()),
            ("Zed".into(), "upper case sorts first".into()),
            ("empty".into(), String::new()),
        ]),
    }
}

/// A checkpoint with momentum and two learned extras, one without momentum.
pub fn checkpoint() -> Checkpoint {
    let images: Vec<f32> = (0..12).map(|i| i as f32 - 5.5).collect();
    let velocity: Vec<f32> = (0..12).map(|i| i as f32 * 0.125).collect();
    Checkpoint {
        images: tensor(&images, &[2, 1, 2, 3]),
        velocity: Some(tensor(&velocity, &[2, 1, 2, 3])),
        image_state: Vec::new(),
        learned: vec![
            LearnedCheckpoint {
                name: "lr".into(),
                value: tensor(&[0.01], &[1]),
                velocity: Some(tensor(&[0.5], &[1])),
            },
            LearnedCheckpoint {
                name: "label_logits".into(),
                value: tensor(&ODD[..4], &[2, 2]),
                velocity: None,
            },
        ],
        state: CheckpointState {
            next_iteration: 3,
            lr_img: 0.05,
            global_step: 17,
            reports: vec![IterationReport {
                outer_steps: 2,
                inner_epochs: 1,
                capped: false,
                inner_loops: 1,
                inner_loops_capped: 0,
                probe_accuracies: vec![0.25, 0.5],
                last_loss: 1.5,
                // Neither is written when empty (serde skip), so the golden bytes keep them so.
                skipped_steps: 0,
                shared_steps: 0,
                record: Default::default(),
            }],
            seconds_per_iteration: vec![0.5, 0.25],
            scheduler_state: json!({"phase": "inner", "counts": [1, 2, 3]}),
            learned: vec!["lr".into(), "label_logits".into()],
            image_steps: 0,
            image_state: Vec::new(),
        },
    }
}

/// An expert of two parameters ([2, 3] and [2]) over two trained epochs.
pub fn expert() -> ExpertTrajectory {
    let record = ExpertRecord {
        expert: 1,
        dataset: "shapes".into(),
        zca: None,
        image_shape: ImageShape::new(3, 16, 16),
        classes: 10,
        arch: "convnet".into(),
        arch_config: json!({"width": 8, "depth": 3}),
        settings: json!({"lr_teacher": 0.01, "augment": {"name": "dsa"}}),
        seed: 5,
        epochs: 2,
        parameter_shapes: vec![vec![2, 3], vec![2]],
        train_loss: vec![2.25, 1.75],
        test_accuracy: vec![0.25, 0.5],
        test_images: 200,
        cafe_lab_version: "0.1.0".into(),
    };
    let epochs = (0..3)
        .map(|e| {
            let base = e as f32 * 10.0;
            vec![
                tensor(&[base, base + 1.0, base + 2.0, base + 3.0, base + 4.0, -base], &[2, 3]),
                tensor(&[base * 0.5, ODD[e]], &[2]),
            ]
        })
        .collect();
    ExpertTrajectory::new(record, epochs).unwrap()
}

/// The parameters of the golden teacher: [2, 3], [2] and a scalar.
pub fn teacher_params() -> Vec<Tensor> {
    vec![
        tensor(&[0.5, -0.5, 1.0, -1.0, ODD[0], ODD[1]], &[2, 3]),
        tensor(&[3.0, 4.0], &[2]),
        tensor(&[9.0], &[]),
    ]
}

/// The architecture the golden teacher is loaded into (its parameters' shapes).
pub fn teacher_arch() -> ParamHolder {
    ParamHolder(teacher_params().iter().map(|t| t.dims().to_vec()).collect())
}

/// A teacher of [`teacher_params`], trained on `shapes`.
pub fn teacher() -> Teacher {
    let net = teacher_arch()
        .build(
            ImageShape::new(1, 2, 3),
            2,
            DType::F32,
            &Device::Cpu,
            &mut rng_from_seed(0),
        )
        .unwrap();
    for (var, value) in net.parameters().iter().zip(teacher_params()) {
        var.set(&value).unwrap();
    }
    Teacher {
        net,
        info: TeacherInfo {
            arch: "params".into(),
            source: "trained".into(),
            epochs: 3,
            train_images: 500,
            accuracy: 0.625,
        },
    }
}
