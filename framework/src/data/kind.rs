//! The known datasets, their names and fixed facts (shape, classes, mean/std, class names).

use crate::{Error, ImageShape, Result};

/// One of the datasets cafe-lab can load. In settings it is its canonical name
/// ([`DatasetKind::name`]); any spelling [`DatasetKind::from_name`] accepts reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DatasetKind {
    /// The embedded procedural set (no files); the default.
    #[default]
    Shapes,
    Mnist,
    FashionMnist,
    Cifar10,
    Cifar100,
    Svhn,
}

impl serde::Serialize for DatasetKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for DatasetKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).map_err(|_| {
            let valid: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
            serde::de::Error::custom(format!("unknown dataset '{name}'; valid names: {}", valid.join(", ")))
        })
    }
}

impl DatasetKind {
    /// Every kind, in the order of [`super::dataset_names`].
    pub const ALL: [DatasetKind; 6] = [
        DatasetKind::Shapes,
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::Svhn,
    ];

    /// Parses a name case-insensitively, ignoring `-` and `_` (so `FashionMNIST`,
    /// `fashion-mnist`, `fashion_mnist` and `CIFAR-10` are all accepted).
    pub fn from_name(name: &str) -> Result<Self> {
        let key: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Self::ALL
            .into_iter()
            .find(|k| k.name().replace('-', "") == key)
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                Error::invalid("dataset", name, format!("valid names: {}", valid.join(", ")))
            })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Shapes => "shapes",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Svhn => "svhn",
        }
    }

    /// The shape of one image.
    pub fn shape(self) -> ImageShape {
        match self {
            DatasetKind::Shapes => ImageShape::new(3, 16, 16),
            DatasetKind::Mnist | DatasetKind::FashionMnist => ImageShape::new(1, 28, 28),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 | DatasetKind::Svhn => ImageShape::new(3, 32, 32),
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Per-channel mean of the train set in [0, 1] units (DESIGN.md "Datasets").
    pub fn mean(self) -> &'static [f32] {
        match self {
            DatasetKind::Shapes => &super::shapes::MEAN,
            DatasetKind::Mnist => &[0.1307],
            DatasetKind::FashionMnist => &[0.2861],
            DatasetKind::Svhn => &[0.4377, 0.4438, 0.4728],
            DatasetKind::Cifar10 => &[0.4914, 0.4822, 0.4465],
            DatasetKind::Cifar100 => &[0.5071, 0.4866, 0.4409],
        }
    }

    /// Per-channel standard deviation in [0, 1] units (DESIGN.md "Datasets").
    pub fn std(self) -> &'static [f32] {
        match self {
            DatasetKind::Shapes => &super::shapes::STD,
            DatasetKind::Mnist => &[0.3081],
            DatasetKind::FashionMnist => &[0.3530],
            DatasetKind::Svhn => &[0.1980, 0.2010, 0.1970],
            DatasetKind::Cifar10 => &[0.2023, 0.1994, 0.2010],
            DatasetKind::Cifar100 => &[0.2673, 0.2564, 0.2762],
        }
    }

    /// The class names, index = label.
    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::Shapes => &super::shapes::CLASS_NAMES,
            DatasetKind::Mnist | DatasetKind::Svhn => &DIGITS,
            DatasetKind::FashionMnist => &FASHION,
            DatasetKind::Cifar10 => &CIFAR10,
            DatasetKind::Cifar100 => &CIFAR100,
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

const FASHION: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const CIFAR10: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The fine labels of CIFAR-100 in label order (`fine_label_names.txt` of the archive).
const CIFAR100: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];
