#include "datasets/data.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "datasets/cifar10.h"
#include "datasets/idx.h"
#include "datasets/multi.h"
#include "datasets/synthetic.h"

namespace polytask::datasets {

namespace fs = std::filesystem;

namespace {

struct SyntheticSource {
  const char* name;
  Dataset (*make)(int64_t n, uint64_t seed);
  const char* what;
};

constexpr SyntheticSource kSynthetic[] = {
    {"synthetic:digits", synthetic_digits, "28x28 grey digit-like images, 10 classes"},
    {"synthetic:rgb", synthetic_rgb, "28x28 RGB images, 3 classes and a regression value"},
    {"synthetic:two-input", synthetic_two_input,
     "50-d and 100-d vectors, 10 classes and a regression value"},
};

std::string synthetic_names() {
  std::string out;
  for (const auto& s : kSynthetic) out += cat(out.empty() ? "" : ", ", s.name);
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// The family is not in the files; the directory or file names usually say it.
std::string idx_family(const std::string& dir, const IdxFiles& files) {
  const std::string where = lower(fs::absolute(dir).string() + "/" +
                                  fs::path(files.train_images).filename().string());
  if (where.find("fashion") != std::string::npos) return "Fashion-MNIST";
  if (where.find("kmnist") != std::string::npos) return "KMNIST";
  if (where.find("emnist") != std::string::npos) return "EMNIST";
  return "MNIST";
}

// The family's class names, as its authors publish them; none for EMNIST (its splits differ).
std::vector<std::string> idx_class_names(const std::string& family) {
  if (family == "Fashion-MNIST")
    return {std::begin(kFashionMnistClassNames), std::end(kFashionMnistClassNames)};
  if (family == "KMNIST") return {"o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"};
  if (family == "MNIST") return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return {};
}

// Whose classes idx_class_names gives, for messages.
std::string idx_class_family(const std::string& family) {
  if (family == "Fashion-MNIST") return "Fashion-MNIST garments";
  if (family == "KMNIST") return "KMNIST characters";
  if (family == "MNIST") return "MNIST digits";
  return "";
}

// The paper's names for the pairs of each family: MultiMNIST, MultiFashion; Multi<family> else.
std::string multi_name(const std::string& family) {
  return family == "Fashion-MNIST" ? "MultiFashion" : "Multi" + family;
}

// batches.meta.txt beside the batches (one name per line) when it is there, else the names
// the data set is published with.
std::vector<std::string> cifar10_class_names(const std::string& dir) {
  std::vector<std::string> names;
  std::ifstream in(fs::path(dir) / "batches.meta.txt");
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (names.size() == 10) return names;
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

std::string sample_shape(const Dataset& d) {
  std::string out;
  for (const auto& nt : d.inputs)
    out += cat(out.empty() ? "" : ", ", d.inputs.size() > 1 ? nt.name + " " : "",
               nt.tensor.shape().sample());
  return out;
}

int32_t class_count(const Dataset& d) {
  const Tensor& cls = d.target("class");
  const int32_t* p = cls.data<int32_t>();
  return cls.numel() ? *std::max_element(p, p + cls.numel()) + 1 : 0;
}

// File sets do not say how many classes they have; the labels seen do (synthetic sets say it in
// their description instead, where a small sample could miss a class).
std::string counts(const DataSplits& s, const char* noun, int64_t limit, bool with_classes) {
  std::string out = cat(s.train.size(), " train, ", s.test.size(), " test ", noun, " of ",
                        sample_shape(s.train));
  if (with_classes)
    out += cat(", ", std::max(class_count(s.train), class_count(s.test)), " classes");
  if (limit > 0) out += cat(" (at most ", limit, " per split)");
  return out;
}

DataSplits load_synthetic(const SyntheticSource& source, const LoadOptions& options) {
  const auto rows = [&](int64_t n) { return options.limit > 0 ? std::min(n, options.limit) : n; };
  if (options.synthetic_train <= 0 || options.synthetic_test <= 0)
    fail(source.name, ": the train and test sizes must be positive, got ", options.synthetic_train,
         " and ", options.synthetic_test);
  DataSplits s;
  // seed + 1 for the test split: what the CLI has always used, so its numbers stay comparable.
  s.train = source.make(rows(options.synthetic_train), options.seed);
  s.test = source.make(rows(options.synthetic_test), options.seed + 1);
  s.description = cat(source.name, " (", source.what, ", seed ", options.seed, "): ",
                      counts(s, "examples", options.limit, false));
  return s;
}

// Both splits of an IDX directory, at most `limit` rows each; the family and class names set.
DataSplits load_idx_directory(const std::string& dir, const IdxFiles& files, int64_t limit,
                              std::string& family) {
  DataSplits s;
  s.train = load_idx_split(files.train_images, files.train_labels, limit);
  s.test = load_idx_split(files.test_images, files.test_labels, limit);
  family = idx_family(dir, files);
  s.class_names = idx_class_names(family);
  s.class_family = idx_class_family(family);
  return s;
}

constexpr const char* kMultiExpected =
    "multi:DIR pairs the images of DIR, a directory with MNIST-family IDX files "
    "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte, raw or .gz)";

DataSplits load_multi(const std::string& dir, const LoadOptions& options) {
  std::error_code ec;
  if (dir.empty()) fail("multi: no directory given; ", kMultiExpected);
  if (!fs::exists(dir, ec)) fail(dir, ": no such directory; ", kMultiExpected);
  if (!fs::is_directory(dir, ec)) fail(dir, ": not a directory; ", kMultiExpected);
  const auto idx = find_idx_files(dir);
  if (!idx) {
    const bool cifar = find_cifar10_files(dir).has_value();
    fail(dir, cifar ? ": holds CIFAR-10 batches, not MNIST-family images; "
                    : ": no MNIST-family IDX files found; ",
         kMultiExpected);
  }
  // Whole splits: a pair's right image may be any image of its split, whatever the limit.
  std::string family;
  DataSplits s = load_idx_directory(dir, *idx, 0, family);
  s.train = overlay_pairs(s.train, MultiSplit::Train, options.limit, idx->train_images);
  s.test = overlay_pairs(s.test, MultiSplit::Test, options.limit, idx->test_images);
  s.description = cat(multi_name(family), ": ", s.train.size(), " train / ", s.test.size(),
                      " test ", kMultiCanvasSide, "x", kMultiCanvasSide, " pairs of ", family,
                      " images from ", dir);
  if (options.limit > 0) s.description += cat(" (at most ", options.limit, " per split)");
  return s;
}

}  // namespace

DataSplits load_data(const std::string& source, const LoadOptions& options) {
  if (options.limit < 0) fail("data: the row limit must be non-negative, got ", options.limit);
  const std::string synthetic = source == "synthetic" ? "synthetic:digits" : source;
  for (const auto& s : kSynthetic)
    if (synthetic == s.name) return load_synthetic(s, options);
  if (source.starts_with("synthetic:"))
    fail("unknown synthetic data set '", source, "' (known: ", synthetic_names(), ")");
  if (source.starts_with("multi:")) return load_multi(source.substr(6), options);

  std::error_code ec;
  const std::string looked_for =
      cat("a directory with MNIST-family IDX files (train-images-idx3-ubyte, "
          "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz) "
          "or CIFAR-10 binary batches (data_batch_1.bin .. data_batch_5.bin, test_batch.bin, "
          "or their cifar-10-batches-bin/ folder), multi:DIR for pairs of such IDX images, or "
          "one of ", synthetic_names());
  if (source.empty()) fail("data: no source given; expected ", looked_for);
  if (!fs::exists(source, ec)) fail(source, ": no such directory; expected ", looked_for);
  if (!fs::is_directory(source, ec)) fail(source, ": not a directory; expected ", looked_for);

  if (const auto idx = find_idx_files(source)) {
    std::string family;
    DataSplits s = load_idx_directory(source, *idx, options.limit, family);
    s.description = cat(family, "-style IDX from ", source, ": ",
                        counts(s, "images", options.limit, true));
    return s;
  }
  if (const auto cifar = find_cifar10_files(source)) {
    DataSplits s;
    s.train = read_cifar10_batches(cifar->train, options.limit);
    s.test = read_cifar10_batches({cifar->test}, options.limit);
    s.description = cat("CIFAR-10 binary from ", cifar->dir, ": ",
                        counts(s, "images", options.limit, true));
    s.class_names = cifar10_class_names(cifar->dir);
    s.class_family = "CIFAR-10 objects";
    return s;
  }
  fail(source, ": no data set found; expected ", looked_for);
}

}  // namespace polytask::datasets
