//! Contract tests over every registered plugin: a plugin is tested the day it is registered.
//! Names, lookups, and for each matcher (prepared as the engine prepares it, with a frozen
//! BatchNorm teacher for those that ask for one): finite non-negative loss, a gradient of the
//! synthetic set's shape that reaches the pixels, a gradient for each learned extra it declares
//! and none it did not, determinism; a matcher that takes no step (0 iterations by default)
//! makes a set of the right shape in `initialise`, the same twice, and refuses iterations;
//! each scheduler drives a loop; each augmenter keeps shapes and is deterministic under a seed.

use cafe_framework::data::Dataset;
use cafe_framework::registry::{find, names, plugins};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::synthetic::SyntheticSet;
use std::sync::Arc;

use cafe_framework::teacher::{Teacher, TeacherInfo};
use cafe_framework::traits::matcher::{sum_parts, Decomposition, Init, MatchContext, NoExchange, PrepareContext};
use cafe_framework::traits::scheduler::{BilevelLoop, IterationReport, ProbeDraw};
use cafe_framework::trajectory::{expert_file, ExpertRecord, ExpertTrajectory};
use cafe_framework::{Architecture, Augmenter, Error, ImageShape, Matcher, Scheduler};
use cafe_tests::blob_dataset;
use candle_core::{DType, Device, Tensor};
use serde_json::json;

#[test]
fn every_kind_lists_its_plugins_sorted_and_unique() {
    for list in [
        names::<dyn Matcher>().unwrap(),
        names::<dyn Scheduler>().unwrap(),
        names::<dyn Architecture>().unwrap(),
        names::<dyn Augmenter>().unwrap(),
    ] {
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(list, sorted);
        assert!(!list.is_empty());
    }
    // The full sorted lists this build must offer: a plugin that silently fails to link
    // (CANDLE_NOTES 7) or a new one registered without a test shows up here.
    assert_eq!(
        names::<dyn Matcher>().unwrap(),
        ["cafe", "distribution", "gradient", "rded", "sre2l", "trajectory"]
    );
    assert_eq!(names::<dyn Scheduler>().unwrap(), ["dynamic", "fixed", "none"]);
    assert_eq!(
        names::<dyn Augmenter>().unwrap(),
        ["crop_flip", "dc", "dsa", "mix", "none"]
    );
    assert_eq!(
        names::<dyn Architecture>().unwrap(),
        [
            "alexnet",
            "alexnetbn",
            "convnet",
            "convnetal",
            "convnetap",
            "convnetar",
            "convnetas",
            "convnetbn",
            "convnetd1",
            "convnetd2",
            "convnetd3",
            "convnetd4",
            "convnetgn",
            "convnetin",
            "convnetln",
            "convnetmp",
            "convnetnn",
            "convnetnp",
            "convnetw128",
            "convnetw256",
            "convnetw32",
            "convnetw64",
            "lenet",
            "mlp",
            "resnet18",
            "resnet18_ap",
            "resnet18bn",
            "resnet18bn_ap",
            "vgg11",
            "vgg11bn",
        ]
    );
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let err = find::<dyn Matcher>("nope").err().expect("unknown matcher must fail");
    let text = err.to_string();
    assert!(matches!(err, Error::UnknownPlugin { .. }));
    assert!(text.contains("unknown matcher 'nope'"), "{text}");
    assert!(text.contains("distribution"), "{text}");
    // Lookups ignore case: ConvNetBN is DC's spelling.
    assert!(find::<dyn Architecture>("ConvNetBN").is_ok());
}

#[test]
fn unknown_config_keys_are_refused_with_the_valid_keys() {
    let plugin = find::<dyn Architecture>("convnet").unwrap();
    let err = plugin
        .instantiate(&json!({"widht": 3}))
        .err()
        .expect("misspelt key must fail");
    let text = err.to_string();
    assert!(text.contains("widht") && text.contains("width"), "{text}");
}

#[test]
fn every_plugin_default_config_builds() {
    for (name, p) in plugins::<dyn Matcher>().unwrap() {
        p.instantiate(&serde_json::Value::Null)
            .unwrap_or_else(|e| panic!("matcher {name}: {e}"));
    }
    for (name, p) in plugins::<dyn Scheduler>().unwrap() {
        p.instantiate(&serde_json::Value::Null)
            .unwrap_or_else(|e| panic!("scheduler {name}: {e}"));
    }
    for (name, p) in plugins::<dyn Augmenter>().unwrap() {
        p.instantiate(&serde_json::Value::Null)
            .unwrap_or_else(|e| panic!("augmenter {name}: {e}"));
    }
    for (name, p) in plugins::<dyn Architecture>().unwrap() {
        p.instantiate(&serde_json::Value::Null)
            .unwrap_or_else(|e| panic!("architecture {name}: {e}"));
    }
}

fn small_net_arch() -> Box<dyn Architecture> {
    find::<dyn Architecture>("convnet")
        .unwrap()
        .instantiate(&json!({"width": 8, "depth": 2}))
        .unwrap()
}

#[test]
fn every_matcher_gives_a_finite_loss_and_a_gradient_on_the_pixels() {
    let shape = ImageShape::new(3, 8, 8);
    let ds = blob_dataset(3, 12, shape, 7);
    let arch = small_net_arch();
    let none = find::<dyn Augmenter>("none")
        .unwrap()
        .instantiate(&serde_json::Value::Null)
        .unwrap();
    let arch_config = json!({"width": 8, "depth": 2});
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("experts");
    write_expert_store(&store, &ds, arch.as_ref(), &arch_config);
    // Settings that a matcher needs to run at all on this tiny case.
    let config_of = |name: &str| match name {
        "trajectory" => json!({"experts": store, "max_start_epoch": 2, "expert_epochs": 1, "syn_steps": 2}),
        // 12 real images per class: few enough candidates for 2 images per class.
        "rded" => json!({"mipc": 12, "num_crop": 2, "factor": 2}),
        _ => serde_json::Value::Null,
    };
    let teacher = bn_teacher(&ds);
    for (name, plugin) in plugins::<dyn Matcher>().unwrap() {
        let mut matcher = plugin.instantiate(&config_of(name)).unwrap();
        if matcher.defaults().needs_second_order {
            cafe_framework::enable_second_order_gradients();
        }
        let mut rng = rng_from_seed(3);
        let mut syn = SyntheticSet::initialise(&ds, 2, Init::Noise, &Device::Cpu, &mut rng).unwrap();
        let initial = syn.images_detached();
        let iterations = matcher.defaults().iterations;
        let wants_teacher = matcher.needs_teacher();
        let prepare = |iterations: usize| PrepareContext {
            dataset: &ds,
            arch: arch.as_ref(),
            arch_name: "convnet",
            arch_config: &arch_config,
            images: &initial,
            labels: &syn.labels,
            ipc: 2,
            iterations,
            device: &Device::Cpu,
            seed: 9,
            teacher: wants_teacher.then_some(&teacher),
        };
        let ctx = prepare(iterations);
        let specs = matcher.prepare(&ctx).unwrap_or_else(|e| panic!("{name}: prepare: {e}"));
        if iterations == 0 {
            // A method that takes no gradient step makes its set once: the set's shape, finite,
            // the same twice under one seed; asked for steps, it refuses before any work.
            let a = matcher
                .initialise(&ctx)
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: no set made"));
            let b = matcher.initialise(&ctx).unwrap().unwrap();
            assert_eq!(a.dims(), initial.dims(), "{name}: set shape");
            let (va, vb) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(va.iter().all(|v| v.is_finite()), "{name}: non-finite pixels");
            assert_eq!(va, vb, "{name} is not deterministic");
            let mut fresh = plugin.instantiate(&config_of(name)).unwrap();
            let teacher_ctx = prepare(3);
            let err = fresh
                .prepare(&teacher_ctx)
                .err()
                .unwrap_or_else(|| panic!("{name} accepted iterations"));
            assert!(err.to_string().contains("iterations"), "{name}: {err}");
            continue;
        }
        for spec in &specs {
            syn.add_learned(&spec.name, &spec.initial).unwrap();
        }
        let net = arch.build(shape, 3, DType::F32, &Device::Cpu, &mut rng).unwrap();
        let by_class = ds.train.class_indices(3);
        let real: Vec<Tensor> = by_class
            .iter()
            .map(|idx| ds.train.to_tensor(&idx[..6], &Device::Cpu).unwrap().0)
            .collect();
        let seeds = [11, 12, 13];
        let ctx = MatchContext {
            network: net.as_ref(),
            real: &real,
            synthetic: &syn.images,
            labels: &syn.labels,
            learned: &syn.learned,
            ipc: 2,
            classes: 3,
            iteration: 0,
            step_seed: 5,
            augmenter: none.as_ref(),
            seeds: &seeds,
            fresh_real: &real,
            owned: 0..3,
            exchange: &NoExchange,
        };
        let a = matcher.compute(&ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
        // A loss shared among ranks is put together from its parts: they must add up to it,
        // to the last bit, as the engine adds them.
        if matcher.decomposition(net.as_ref()) != Decomposition::Global {
            let dtype = a.loss_parts.first().map_or(DType::F32, |p| p.dtype());
            let values: Vec<f64> = a
                .loss_parts
                .iter()
                .chain(&a.loss_global)
                .map(|p| p.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap())
                .collect();
            assert!(
                values.len() > usize::from(a.loss_global.is_some()),
                "{name}: no loss parts"
            );
            assert_eq!(
                sum_parts(&values, dtype).to_bits(),
                a.loss.to_bits(),
                "{name}: parts do not add up to the loss"
            );
        }
        let b = matcher.compute(&ctx).unwrap();
        assert!(a.loss.is_finite() && a.loss >= 0.0, "{name}: loss {}", a.loss);
        assert_eq!(a.loss, b.loss, "{name} is not deterministic");
        assert_eq!(a.gradient.dims(), syn.images.dims(), "{name}: gradient shape");
        let g = a.gradient.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{name}: non-finite gradient");
        assert!(
            g.iter().any(|v| *v != 0.0),
            "{name}: the gradient does not reach the synthetic pixels"
        );
        let returned: Vec<&str> = a.learned.iter().map(|(n, _)| n.as_str()).collect();
        let declared: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(returned, declared, "{name}: gradients of learned extras");
        for ((n, grad), spec) in a.learned.iter().zip(&specs) {
            assert_eq!(grad.dims(), spec.initial.dims(), "{name}: gradient shape of {n}");
        }
    }
}

/// An untrained ConvNetBN (width 8, depth 2) for `ds`, as a frozen teacher: its running
/// statistics are PyTorch's initial ones, which is all the contract needs.
fn bn_teacher(ds: &Dataset) -> Arc<Teacher> {
    let arch = find::<dyn Architecture>("convnetbn")
        .unwrap()
        .instantiate(&json!({"width": 8, "depth": 2}))
        .unwrap();
    let net = arch
        .build(
            ds.train.shape,
            ds.classes,
            DType::F32,
            &Device::Cpu,
            &mut rng_from_seed(31),
        )
        .unwrap();
    Arc::new(Teacher {
        net,
        info: TeacherInfo {
            arch: "convnetbn".into(),
            source: "test".into(),
            epochs: 0,
            train_images: 0,
            accuracy: 0.0,
        },
    })
}

/// A store of two experts of `arch` on `ds`, each three epochs of parameters that drift (what
/// `cafe-lab experts` would write, without the training: the contract is about shapes).
fn write_expert_store(dir: &std::path::Path, ds: &Dataset, arch: &dyn Architecture, arch_config: &serde_json::Value) {
    let mut rng = rng_from_seed(21);
    for k in 0..2 {
        let net = arch
            .build(ds.train.shape, ds.classes, DType::F32, &Device::Cpu, &mut rng)
            .unwrap();
        let start: Vec<Tensor> = net.parameters().iter().map(|p| p.as_tensor().detach()).collect();
        let epochs: Vec<Vec<Tensor>> = (0..4)
            .map(|e| {
                start
                    .iter()
                    .map(|p| (p + (e as f64) * 0.01 * (k as f64 + 1.0)).unwrap())
                    .collect()
            })
            .collect();
        let record = ExpertRecord {
            expert: k,
            dataset: ds.name.clone(),
            zca: None,
            image_shape: ds.train.shape,
            classes: ds.classes,
            arch: "convnet".into(),
            arch_config: arch_config.clone(),
            settings: json!({}),
            seed: 21,
            epochs: 3,
            parameter_shapes: start.iter().map(|t| t.dims().to_vec()).collect(),
            train_loss: vec![1.0; 3],
            test_accuracy: vec![0.5; 3],
            test_images: 1,
            cafe_lab_version: "test".into(),
        };
        ExpertTrajectory::new(record, epochs)
            .unwrap()
            .save(&expert_file(dir, k))
            .unwrap();
    }
}

/// A scripted bi-level loop: counts calls; probe accuracies come from a list.
struct Scripted {
    outer: usize,
    inner: usize,
    probes: Vec<f64>,
}

impl BilevelLoop for Scripted {
    fn outer_step(&mut self) -> cafe_framework::Result<f64> {
        self.outer += 1;
        Ok(1.0)
    }
    fn inner_epoch(&mut self) -> cafe_framework::Result<()> {
        self.inner += 1;
        Ok(())
    }
    fn probe_accuracy(&mut self, _per_class: usize, _draw: ProbeDraw) -> cafe_framework::Result<f64> {
        Ok(self.probes.get(self.outer + self.inner).copied().unwrap_or(0.5))
    }
    fn ipc(&self) -> usize {
        10
    }
    fn classes(&self) -> usize {
        10
    }
}

#[test]
fn every_scheduler_runs_an_iteration_and_reports_what_it_did() {
    for (name, plugin) in plugins::<dyn Scheduler>().unwrap() {
        let mut scheduler = plugin.instantiate(&serde_json::Value::Null).unwrap();
        let mut lp = Scripted {
            outer: 0,
            inner: 0,
            probes: Vec::new(),
        };
        let report: IterationReport = scheduler
            .run_iteration(&mut lp)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.outer_steps >= 1, "{name} took no outer step");
        assert_eq!(report.outer_steps, lp.outer, "{name}: report vs calls");
        assert_eq!(report.inner_epochs, lp.inner, "{name}: report vs calls");
        if !scheduler.trains_network() {
            assert_eq!(lp.inner, 0, "{name} says it never trains the network");
        }
    }
}

#[test]
fn every_augmenter_keeps_shapes_and_repeats_under_a_seed() {
    let x = Tensor::randn(0f32, 1.0, (4, 3, 16, 16), &Device::Cpu).unwrap();
    for (name, plugin) in plugins::<dyn Augmenter>().unwrap() {
        let aug = plugin.instantiate(&serde_json::Value::Null).unwrap();
        for siamese in [true, false] {
            let a = aug.augment(&x, 5, siamese).unwrap_or_else(|e| panic!("{name}: {e}"));
            let b = aug.augment(&x, 5, siamese).unwrap();
            assert_eq!(a.dims(), x.dims(), "{name}: shape");
            let diff = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(diff, 0.0, "{name}: the same seed must give the same transform");
        }
    }
}
