//! The schedulers against scripted accuracy sequences: exactly when each loop ends.

use std::collections::VecDeque;

use cafe_framework::registry::find;
use cafe_framework::traits::scheduler::{BilevelLoop, IterationReport, ProbeDraw};
use cafe_framework::{Result, Scheduler};
use cafe_plugins::schedulers::fixed::loops_for_ipc;
use serde_json::json;

/// A bi-level loop whose probe answers from two scripts: one read after outer steps, one after
/// inner epochs (the last value repeats when a script runs out). It records the call order.
struct Scripted {
    ipc: usize,
    classes: usize,
    after_outer: VecDeque<f64>,
    after_inner: VecDeque<f64>,
    last_was_outer: bool,
    calls: String,
    probe_sizes: Vec<usize>,
    probe_draws: Vec<ProbeDraw>,
}

impl Scripted {
    fn new(ipc: usize, after_outer: &[f64], after_inner: &[f64]) -> Self {
        Self {
            ipc,
            classes: 10,
            after_outer: after_outer.iter().copied().collect(),
            after_inner: after_inner.iter().copied().collect(),
            last_was_outer: false,
            calls: String::new(),
            probe_sizes: Vec::new(),
            probe_draws: Vec::new(),
        }
    }
    fn inner_runs(&self) -> Vec<usize> {
        self.calls.split('O').skip(1).map(|s| s.len()).collect()
    }
}

fn next(q: &mut VecDeque<f64>) -> f64 {
    if q.len() > 1 {
        q.pop_front().unwrap()
    } else {
        *q.front().unwrap_or(&0.5)
    }
}

impl BilevelLoop for Scripted {
    fn outer_step(&mut self) -> Result<f64> {
        self.calls.push('O');
        self.last_was_outer = true;
        Ok(0.25)
    }
    fn inner_epoch(&mut self) -> Result<()> {
        self.calls.push('i');
        self.last_was_outer = false;
        Ok(())
    }
    fn probe_accuracy(&mut self, per_class: usize, draw: ProbeDraw) -> Result<f64> {
        self.probe_sizes.push(per_class);
        self.probe_draws.push(draw);
        Ok(if self.last_was_outer {
            next(&mut self.after_outer)
        } else {
            next(&mut self.after_inner)
        })
    }
    fn ipc(&self) -> usize {
        self.ipc
    }
    fn classes(&self) -> usize {
        self.classes
    }
}

/// The dynamic scheduler watching plain probe accuracy (the window logic alone), with `extra`.
fn dynamic_on_accuracy(extra: serde_json::Value) -> Box<dyn Scheduler> {
    let mut config = json!({"probe_value": "accuracy"});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    scheduler("dynamic", config)
}

fn scheduler(name: &str, config: serde_json::Value) -> Box<dyn Scheduler> {
    cafe_plugins::link();
    find::<dyn Scheduler>(name).unwrap().instantiate(&config).unwrap()
}

fn run(s: &mut dyn Scheduler, lp: &mut Scripted) -> IterationReport {
    s.run_iteration(lp).unwrap()
}

#[test]
fn fixed_follows_dcs_table() {
    // (ipc, outer, inner) from DC's reference code.
    for (ipc, outer, inner) in [
        (1, 1, 1),
        (10, 10, 50),
        (20, 20, 25),
        (30, 30, 20),
        (40, 40, 15),
        (50, 50, 10),
    ] {
        assert_eq!(loops_for_ipc(ipc), (outer, inner), "ipc {ipc}");
        let mut lp = Scripted::new(ipc, &[], &[]);
        let report = run(scheduler("fixed", json!({})).as_mut(), &mut lp);
        assert_eq!(report.outer_steps, outer);
        assert_eq!(
            report.inner_epochs,
            (outer - 1) * inner,
            "no inner loop after the last outer step"
        );
        assert!(lp.calls.ends_with('O'));
        assert!(lp.calls.starts_with('O'));
    }
}

#[test]
fn fixed_has_a_rule_for_every_other_ipc() {
    assert_eq!(loops_for_ipc(5), (5, 50), "below 10: the ipc-10 inner count");
    assert_eq!(
        loops_for_ipc(15),
        (15, 38),
        "between entries: 50 + (25 - 50) / 2 = 37.5, rounded"
    );
    assert_eq!(loops_for_ipc(45), (45, 13), "15 + (10 - 15) / 2 = 12.5, rounded");
    assert_eq!(loops_for_ipc(100), (100, 5), "above 50: 500 / ipc");
    assert_eq!(loops_for_ipc(1000), (1000, 1), "never below one epoch");
    let mut lp = Scripted::new(10, &[], &[]);
    let report = run(
        scheduler("fixed", json!({"outer_loop": 3, "inner_loop": 2})).as_mut(),
        &mut lp,
    );
    assert_eq!(lp.calls, "OiiOiiO");
    assert_eq!((report.outer_steps, report.inner_epochs), (3, 4));
    assert!(find::<dyn Scheduler>("fixed")
        .unwrap()
        .instantiate(&json!({"outer_loop": 0}))
        .is_err());
}

#[test]
fn dynamic_ends_the_iteration_when_the_outer_window_settles() {
    // Probe after every outer step reads 0.5 (range 0 < lambda_1 once 10 are in); after inner
    // epochs it alternates 0.0 / 0.1 (range 0.1 > lambda_2 once 10 are in).
    let inner: Vec<f64> = (0..1000).map(|k| if k % 2 == 0 { 0.0 } else { 0.1 }).collect();
    let mut lp = Scripted::new(10, &[0.5], &inner);
    let report = run(dynamic_on_accuracy(json!({})).as_mut(), &mut lp);
    assert_eq!(
        report.outer_steps, 10,
        "the outer window needs 10 values before it can fire"
    );
    assert_eq!(
        lp.inner_runs(),
        [10, 10, 10, 10, 10, 10, 10, 10, 10, 0],
        "each inner loop runs exactly its window"
    );
    assert_eq!(report.inner_epochs, 90);
    assert!(!report.capped);
    assert_eq!(report.probe_accuracies.len(), 100);
    assert!(
        lp.probe_sizes.iter().all(|&n| n == 128),
        "the default probe is 128 images per class"
    );
    assert!(
        lp.probe_draws.iter().all(|&d| d == ProbeDraw::Fresh),
        "the default probe is drawn anew every time, as CAFE's distill.py:301,333"
    );
    let mut lp = Scripted::new(10, &[0.5], &inner);
    run(dynamic_on_accuracy(json!({"probe": "fixed"})).as_mut(), &mut lp);
    assert!(lp.probe_draws.iter().all(|&d| d == ProbeDraw::Fixed));
}

#[test]
fn dynamic_leaves_the_inner_loop_on_the_first_epoch_the_window_moves_enough() {
    // Inner probe: 12 x 0.50 then 0.60: the window is full from epoch 10 with range 0, and the
    // 13th value makes the range 0.1 > 0.03. The outer probe settles immediately after that.
    let mut inner = vec![0.5; 12];
    inner.push(0.6);
    inner.extend(std::iter::repeat_n(0.6, 9));
    inner.push(0.7);
    inner.extend((0..200).map(|k| if k % 2 == 0 { 0.0 } else { 0.1 }));
    let mut lp = Scripted::new(10, &[0.5], &inner);
    let report = run(dynamic_on_accuracy(json!({"window": 10})).as_mut(), &mut lp);
    let runs = lp.inner_runs();
    assert_eq!(runs[0], 13, "{runs:?}");
    assert_eq!(
        runs[1], 10,
        "the inner window starts empty again; 9 x 0.6 then 0.7 fires at 10"
    );
    assert!(runs[2..9].iter().all(|&r| r == 10), "{runs:?}");
    assert!(!report.capped);
}

#[test]
fn dynamic_thresholds_are_strict() {
    // Outer range exactly lambda_1 (0.5 vs 0.54) does not end the iteration.
    let outer: Vec<f64> = (0..200).map(|k| if k % 2 == 0 { 0.5 } else { 0.54 }).collect();
    let inner: Vec<f64> = (0..10_000).map(|k| if k % 2 == 0 { 0.0 } else { 0.5 }).collect();
    let mut lp = Scripted::new(10, &outer, &inner);
    let report = run(dynamic_on_accuracy(json!({"max_outer_steps": 30})).as_mut(), &mut lp);
    assert_eq!(report.outer_steps, 30);
    assert!(report.capped, "only the cap ended it");
}

#[test]
fn dynamic_caps_a_network_that_never_moves_enough() {
    // Constant inner accuracy: the inner window's range stays 0 < lambda_2 forever.
    let mut lp = Scripted::new(10, &[0.5], &[0.3]);
    let report = run(
        dynamic_on_accuracy(json!({"max_inner_epochs": 25, "max_outer_steps": 3})).as_mut(),
        &mut lp,
    );
    assert!(report.capped);
    assert_eq!(lp.inner_runs(), [25, 25, 0]);
    assert_eq!(report.outer_steps, 3);
}

#[test]
fn dynamic_reference_value_has_one_accumulator_per_loop_reset_at_its_start() {
    // Window 3, 10 classes. Outer probe always 0.45, inner probe always 0.5.
    // CAFE's distill.py:304-305: a = (a + sum_c acc_c) / classes = a / 10 + acc.
    // Inner accumulator reset at every inner-loop start (326): 0.5, 0.55, 0.555: range 0.055
    // > 0.03, so every inner loop ends after its 3 epochs (the start-up jump).
    // Outer accumulator, untouched by the inner loops: 0.45, 0.495, 0.4995 (range 0.0495 >=
    // 0.04), 0.49995 (window 0.495..0.49995, range 0.00495 < 0.04): 4 outer steps.
    let config = json!({"window": 3, "max_outer_steps": 50});
    let mut lp = Scripted::new(10, &[0.45], &[0.5]);
    let report = run(scheduler("dynamic", config).as_mut(), &mut lp);
    assert_eq!(lp.inner_runs(), [3, 3, 3, 0]);
    assert_eq!((report.outer_steps, report.inner_epochs), (4, 9));
    assert!(!report.capped);
    assert!(
        report.probe_accuracies.iter().all(|a| [0.45, 0.5].contains(a)),
        "the report keeps raw accuracies"
    );

    // One accumulator shared by both loops and never reset (cafe-lab before, and a misreading
    // of the reference) gives inner values 0.545, 0.5545, 0.55545, ... that never move by 0.03:
    // only the cap would end them. Plain accuracy (a constant 0.5) never moves either.
    let config = json!({"probe_value": "accuracy", "window": 3, "max_outer_steps": 50, "max_inner_epochs": 40});
    let mut lp = Scripted::new(10, &[0.45], &[0.5]);
    let report = run(scheduler("dynamic", config).as_mut(), &mut lp);
    assert_eq!(lp.inner_runs()[0], 40);
    assert!(report.capped);
}

#[test]
fn dynamic_reference_value_divides_by_the_number_of_classes() {
    // 5 classes, window 2, lambda_1 0.05: a = a / 5 + acc.
    // Outer: 0.45, 0.54 (range 0.09), 0.558 (range 0.018 < 0.05): 3 outer steps.
    // (Dividing by 10 instead: 0.45, 0.495, range 0.045 < 0.05: 2 outer steps.)
    // Inner, constant 0.5: 0.5, 0.6 (range 0.1 > 0.03): 2 epochs per inner loop.
    let config = json!({"window": 2, "lambda_1": 0.05, "max_outer_steps": 50});
    let mut lp = Scripted::new(10, &[0.45], &[0.5]);
    lp.classes = 5;
    let report = run(scheduler("dynamic", config).as_mut(), &mut lp);
    assert_eq!(lp.inner_runs(), [2, 2, 0]);
    assert_eq!((report.outer_steps, report.inner_epochs), (3, 4));
}

#[test]
fn dynamic_refuses_lambdas_outside_the_unit_interval() {
    let err = find::<dyn Scheduler>("dynamic")
        .unwrap()
        .instantiate(&json!({"lambda_1": 1.5}))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("lambda_1") && err.to_string().contains("[0, 1]"),
        "{err}"
    );
    assert!(find::<dyn Scheduler>("dynamic")
        .unwrap()
        .instantiate(&json!({"window": 0}))
        .is_err());
}
