//! Settings a condensation accepts although they do not do what they seem to say, each
//! answered with a note that is printed once and kept in results.json (`notes`):
//!
//! - `batch_real` above the size of a class: as in the reference
//!   (`np.random.permutation(indices_class[c])[:n]`), a matching step takes the whole class.
//!   Above the largest class the value changes nothing, so it is clamped to that size and
//!   config.json records the value in effect. Refusing it would break settings that are
//!   fine on larger datasets for no gain in meaning.
//! - `iterations` 0: nothing is condensed, and the evaluation measures the initial synthetic
//!   set; a legitimate way to evaluate an initialisation, but never to be mistaken for a
//!   condensed result.

use crate::data::Dataset;
use crate::synthetic::Init;

use super::resolve::ResolvedRun;

/// Fits `run` to the loaded dataset: clamps `batch_real` and returns the notes for the person
/// running it and for results.json, and whether the resolved configuration changed (then
/// config.json is to be written again).
pub(super) fn fit_to_dataset(run: &mut ResolvedRun, ds: &Dataset) -> (Vec<String>, bool) {
    let mut refitted = false;
    let mut notes = Vec::new();
    let sizes: Vec<usize> = ds.train.class_indices(ds.classes).iter().map(Vec::len).collect();
    let smallest = sizes.iter().copied().min().unwrap_or(0);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let asked = run.settings.batch_real;
    if asked > smallest {
        let mut note = if smallest == largest {
            format!(
                "batch_real {asked} is more than the {largest} images of each class: each \
                 matching step takes whole classes, as the reference does"
            )
        } else {
            format!(
                "batch_real {asked} is more than the {smallest} images of the smallest class: \
                 each matching step takes the whole of every class that is not larger, as the \
                 reference does"
            )
        };
        if asked > largest {
            run.settings.batch_real = largest;
            run.config.batch_real = largest;
            run.resolved_json["batch_real"] = largest.into();
            refitted = true;
            note.push_str(&format!(
                "; config.json records batch_real {largest}, the value in effect"
            ));
        }
        notes.push(note);
    }
    if run.settings.iterations == 0 {
        let init = match run.settings.init {
            Init::Real => "random real images",
            Init::Noise => "Gaussian noise",
        };
        notes.push(format!(
            "0 iterations: nothing is condensed; the 'synthetic' set evaluated is its \
             initialisation ({init}), not a condensed set"
        ));
    }
    (notes, refitted)
}
