//! Metric logging behind a small trait: TensorBoard event files for people, an in-memory log
//! for tests, and a fan-out to several at once.

use std::collections::BTreeMap;
use std::path::Path;

/// Receives the metrics of a run. Logging never fails a run: writers report their own I/O
/// problems once on stderr.
pub trait MetricLogger: Send {
    fn scalar(&mut self, tag: &str, step: usize, value: f64);
    /// An RGB image (e.g. the synthetic grid).
    fn image(&mut self, _tag: &str, _step: usize, _image: &image::RgbImage) {}
    /// A text (e.g. the resolved configuration), shown by TensorBoard's text plugin.
    fn text(&mut self, _tag: &str, _step: usize, _text: &str) {}
    fn flush(&mut self) {}
}

/// Keeps every scalar in memory; for tests ("useful when testing", as burn-train says).
#[derive(Debug, Default, Clone)]
pub struct MemoryLogger {
    pub scalars: BTreeMap<String, Vec<(usize, f64)>>,
    pub images: Vec<(String, usize, u32, u32)>,
    pub texts: Vec<(String, usize, String)>,
}

impl MetricLogger for MemoryLogger {
    fn scalar(&mut self, tag: &str, step: usize, value: f64) {
        self.scalars.entry(tag.to_string()).or_default().push((step, value));
    }
    fn image(&mut self, tag: &str, step: usize, image: &image::RgbImage) {
        self.images.push((tag.to_string(), step, image.width(), image.height()));
    }
    fn text(&mut self, tag: &str, step: usize, text: &str) {
        self.texts.push((tag.to_string(), step, text.to_string()));
    }
}

/// Writes TensorBoard event files into a folder, with tensorboard-rs's event writer and
/// summaries built here where its own are missing (`add_text` is unimplemented there) or wrong
/// (its `add_image` swaps width and height).
pub struct TensorBoardLogger {
    writer: tensorboard_rs::summary_writer::FileWriter,
}

impl TensorBoardLogger {
    pub fn new(dir: &Path) -> Self {
        Self {
            writer: tensorboard_rs::summary_writer::FileWriter::new(dir),
        }
    }

    fn write(&mut self, value: tensorboard_proto::summary::Summary_Value, step: usize) {
        let mut summary = tensorboard_proto::summary::Summary::new();
        summary.set_value(protobuf::RepeatedField::from(vec![value]));
        self.writer.add_summary(summary, step);
    }
}

impl MetricLogger for TensorBoardLogger {
    fn scalar(&mut self, tag: &str, step: usize, value: f64) {
        self.writer
            .add_summary(tensorboard_rs::summary::scalar(tag, value as f32), step);
    }

    fn image(&mut self, tag: &str, step: usize, image: &image::RgbImage) {
        let Ok(png) = crate::output::png_bytes(image) else {
            return;
        };
        let mut img = tensorboard_proto::summary::Summary_Image::new();
        img.set_height(image.height() as i32);
        img.set_width(image.width() as i32);
        img.set_colorspace(3);
        img.set_encoded_image_string(png);
        let mut value = tensorboard_proto::summary::Summary_Value::new();
        value.set_tag(tag.to_string());
        value.set_image(img);
        self.write(value, step);
    }

    fn text(&mut self, tag: &str, step: usize, text: &str) {
        // The text plugin reads a string tensor whose metadata names the plugin "text".
        let mut tensor = tensorboard_proto::tensor::TensorProto::new();
        tensor.set_dtype(tensorboard_proto::types::DataType::DT_STRING);
        tensor.set_string_val(protobuf::RepeatedField::from(vec![text.as_bytes().to_vec()]));
        let mut plugin = tensorboard_proto::summary::SummaryMetadata_PluginData::new();
        plugin.set_plugin_name("text".to_string());
        let mut meta = tensorboard_proto::summary::SummaryMetadata::new();
        meta.set_plugin_data(plugin);
        let mut value = tensorboard_proto::summary::Summary_Value::new();
        value.set_tag(tag.to_string());
        value.set_metadata(meta);
        value.set_tensor(tensor);
        self.write(value, step);
    }

    fn flush(&mut self) {
        self.writer.flush();
    }
}

/// Sends everything to several loggers.
#[derive(Default)]
pub struct FanOut(pub Vec<Box<dyn MetricLogger>>);

impl MetricLogger for FanOut {
    fn scalar(&mut self, tag: &str, step: usize, value: f64) {
        self.0.iter_mut().for_each(|l| l.scalar(tag, step, value));
    }
    fn image(&mut self, tag: &str, step: usize, image: &image::RgbImage) {
        self.0.iter_mut().for_each(|l| l.image(tag, step, image));
    }
    fn text(&mut self, tag: &str, step: usize, text: &str) {
        self.0.iter_mut().for_each(|l| l.text(tag, step, text));
    }
    fn flush(&mut self) {
        self.0.iter_mut().for_each(|l| l.flush());
    }
}
