#include "datasets/labels.h"

#include <algorithm>
#include <optional>

namespace polytask::datasets {

namespace {

const NamedTensor* find(const std::vector<NamedTensor>& list, const std::string& name) {
  for (const auto& nt : list)
    if (nt.name == name) return &nt;
  return nullptr;
}

std::string names_of(const std::vector<NamedTensor>& list) {
  std::string out;
  for (const auto& nt : list) out += (out.empty() ? "" : ", ") + nt.name;
  return out.empty() ? "none" : out;
}

void put(std::vector<NamedTensor>& list, const std::string& name, const Tensor& t) {
  for (auto& nt : list)
    if (nt.name == name) {
      nt.tensor = t;
      return;
    }
  list.push_back({name, t});
}

bool is_colour_rule(const std::string& source) { return source == "colour" || source == "color"; }

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string task_prefix(const Task& task) {
  return cat("task '", task.name, "' (", loss_name(task.loss), "): ");
}

const Tensor& image_for(const Dataset& data, const Task& task, const std::string& rule) {
  const NamedTensor* image = find(data.inputs, "image");
  if (!image)
    fail(task_prefix(task), "the '", rule, "' rule needs an input named 'image' (the data has: ",
         names_of(data.inputs), ")");
  const Tensor& t = image->tensor;
  if (t.shape().rank() != 4 || t.dtype() != DType::F32 || t.device() != Device::CPU)
    fail(task_prefix(task), "the '", rule, "' rule needs 'image' as f32 (N, C, H, W) on the cpu, ",
         "got ", t.describe());
  return t;
}

// Tints the grey (or RGB) images and returns the colour indices.
Tensor apply_colour(Dataset& data, const Task& task, uint64_t seed) {
  const Tensor image = image_for(data, task, "colour");
  const int64_t n = image.dim(0), channels = image.dim(1), plane = image.dim(2) * image.dim(3);
  if (channels != 1 && channels != 3)
    fail(task_prefix(task), "the 'colour' rule tints grey (1-channel) or RGB (3-channel) images, ",
         "'image' has ", channels, " channels");
  Tensor tinted = Tensor::empty({n, 3, image.dim(2), image.dim(3)});
  Tensor index = Tensor::empty({n}, DType::I32);
  const float* src = image.data<float>();
  float* dst = tinted.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int c = tint_colour(seed, i);
    index.data<int32_t>()[i] = c;
    for (int64_t ch = 0; ch < 3; ++ch) {
      const float gain = kTintColours[c][ch];
      const float* from = src + (i * channels + (channels == 1 ? 0 : ch)) * plane;
      float* to = dst + (i * 3 + ch) * plane;
      for (int64_t p = 0; p < plane; ++p) to[p] = from[p] * gain;
    }
  }
  put(data.inputs, "image", tinted);
  return index;
}

Tensor brightness(const Dataset& data, const Task& task) {
  const Tensor& image = image_for(data, task, "brightness");
  const int64_t n = image.dim(0), per_row = image.numel() / std::max<int64_t>(n, 1);
  Tensor out = Tensor::empty({n, 1});
  const float* px = image.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0;
    for (int64_t p = 0; p < per_row; ++p) sum += double(px[i * per_row + p]);
    out.data<float>()[i] = float(sum / double(per_row));
  }
  return out;
}

Tensor parity(const std::vector<NamedTensor>& fields, const Task& task) {
  const NamedTensor* cls = find(fields, "class");
  if (!cls)
    fail(task_prefix(task), "the 'parity' rule needs a 'class' field (the data has: ",
         names_of(fields), ")");
  if (cls->tensor.dtype() != DType::I32 || cls->tensor.shape().rank() != 1)
    fail(task_prefix(task), "the 'parity' rule needs 'class' as i32 (N,) labels, got ",
         cls->tensor.describe());
  auto labels = cls->tensor.to_vector<int32_t>();
  for (auto& v : labels) v = ((v % 2) + 2) % 2;
  return Tensor::from_vector<int32_t>(cls->tensor.shape(), labels);
}

Tensor region(const std::vector<NamedTensor>& fields, const Task& task) {
  const NamedTensor* cls = find(fields, "class");
  if (!cls)
    fail(task_prefix(task), "the 'region' rule needs a 'class' field (the data has: ",
         names_of(fields), ")");
  if (cls->tensor.dtype() != DType::I32 || cls->tensor.shape().rank() != 1)
    fail(task_prefix(task), "the 'region' rule needs 'class' as i32 (N,) labels, got ",
         cls->tensor.describe());
  auto labels = cls->tensor.to_vector<int32_t>();
  for (size_t row = 0; row < labels.size(); ++row) {
    const int r = garment_region(labels[row]);
    if (r < 0)
      fail(task_prefix(task), "the 'region' rule maps Fashion-MNIST classes 0..9, 'class' has ",
           labels[row], " at row ", row);
    labels[row] = r;
  }
  return Tensor::from_vector<int32_t>(cls->tensor.shape(), labels);
}

bool same_names(const std::vector<std::string>& names, const auto& expected) {
  return std::equal(names.begin(), names.end(), std::begin(expected), std::end(expected));
}

// Refuses a rule defined for one data set's classes on data whose class names are another's.
void check_rules_fit_classes(const std::vector<Task>& tasks, const DataSplits& data) {
  if (data.class_names.empty()) return;  // no names: the index stands for itself
  for (const auto& task : tasks) {
    const std::string& source = task.label_source();
    if (source != "region" || find(data.train.targets, source)) continue;
    if (same_names(data.class_names, kFashionMnistClassNames)) continue;
    std::string classes = data.class_family;
    if (classes.empty())
      for (const auto& name : data.class_names) classes += (classes.empty() ? "" : ", ") + name;
    fail(task_prefix(task), "rule 'region' maps Fashion-MNIST garments; this data's classes are ",
         classes);
  }
}

// Puts a resolved source into the form the task's loss reads (see labels.h).
Tensor fit_to_task(const Task& task, const Tensor& source, const std::string& what) {
  const bool class_labels = source.dtype() == DType::I32;
  if (class_labels && source.shape().rank() != 1)
    fail(task_prefix(task), what, " holds integer labels of shape ", source.shape(),
         "; class labels must be (N,)");
  if (task.effective_target() == TargetKind::ClassIndex) {
    if (!class_labels)
      fail(task_prefix(task), what, " is a float regression target ", source.describe(),
           ", but softmax cross-entropy with class-index targets needs integer class labels "
           "(e.g. class, parity, colour); use loss mse for a regression head");
    return source;
  }
  if (!class_labels) return source;
  if (task.loss == LossKind::SoftmaxCrossEntropy)
    fail(task_prefix(task), what, " holds class indices but the task expects one-hot value "
                                  "targets; use class-index targets");
  const auto labels = source.to_vector<int32_t>();
  std::vector<float> values(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    if (task.loss == LossKind::BinaryCrossEntropy && labels[i] != 0 && labels[i] != 1)
      fail(task_prefix(task), what, " has label ", labels[i], " at row ", i,
           "; binary cross-entropy needs labels 0 or 1");
    values[i] = float(labels[i]);
  }
  return Tensor::from_vector<float>({source.dim(0), 1}, values);
}

}  // namespace

std::vector<std::string> label_rules() { return {"parity", "brightness", "colour", "region"}; }

int garment_region(int32_t garment) {
  // By Fashion-MNIST class: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker,
  // Bag, Ankle boot.
  constexpr int kRegion[10] = {0, 1, 0, 0, 0, 2, 0, 2, 2, 2};
  return garment >= 0 && garment < 10 ? kRegion[garment] : -1;
}

int tint_colour(uint64_t seed, int64_t row) {
  return int(splitmix64(splitmix64(seed) ^ uint64_t(row)) % kTintColourCount);
}

void attach_task_targets(Dataset& result, const std::vector<Task>& tasks, uint64_t seed) {
  // Work on a shallow copy (tensors share storage), so a failing task leaves `result` as it was.
  Dataset data = result;
  const std::vector<NamedTensor> fields = data.targets;
  // Input-changing rules first, once, so every other rule sees the final inputs.
  std::optional<Tensor> colours;
  if (const NamedTensor* kept = find(fields, "colour")) colours = kept->tensor;
  for (const auto& task : tasks)
    if (!colours && is_colour_rule(task.label_source()) && !find(fields, task.label_source())) {
      colours = apply_colour(data, task, seed);
      put(data.targets, "colour", *colours);
    }

  std::vector<NamedTensor> made;
  for (const auto& task : tasks) {
    const std::string& source = task.label_source();
    Tensor resolved;
    std::string what;
    if (const NamedTensor* field = find(fields, source)) {
      resolved = field->tensor;
      what = cat("data field '", source, "'");
    } else if (is_colour_rule(source)) {
      resolved = *colours;
      what = "rule 'colour'";
    } else if (source == "parity") {
      resolved = parity(fields, task);
      what = "rule 'parity'";
    } else if (source == "region") {
      resolved = region(fields, task);
      what = "rule 'region'";
    } else if (source == "brightness") {
      resolved = brightness(data, task);
      what = "rule 'brightness'";
    } else {
      std::string rules;
      for (const auto& r : label_rules()) rules += (rules.empty() ? "" : ", ") + r;
      fail("task '", task.name, "': unknown label source '", source, "' (data fields: ",
           names_of(fields), "; rules: ", rules, ")");
    }
    if (resolved.dim(0) != data.size())
      fail(task_prefix(task), what, " has ", resolved.dim(0), " rows but the data has ",
           data.size());
    made.push_back({task.name, fit_to_task(task, resolved, what)});
  }
  for (const auto& nt : made) put(data.targets, nt.name, nt.tensor);
  result = std::move(data);
}

std::vector<std::string> task_value_names(const Task& task,
                                          const std::vector<std::string>& class_names) {
  if (task.effective_target() != TargetKind::ClassIndex) return {};
  const std::string& source = task.label_source();
  if (source == "class" || source == "left" || source == "right") return class_names;
  if (source == "parity") return {"even", "odd"};
  if (source == "colour" || source == "color") return {"red", "green", "blue"};
  if (source == "region") return {std::begin(kRegionNames), std::end(kRegionNames)};
  return {};
}

void attach_task_targets(DataSplits& data, const std::vector<Task>& tasks, uint64_t seed) {
  check_rules_fit_classes(tasks, data);
  // Shallow copies (tensors share storage), so a failure in the test split leaves both as they
  // were.
  Dataset train = data.train, test = data.test;
  attach_task_targets(train, tasks, seed);
  attach_task_targets(test, tasks, seed);
  data.train = std::move(train);
  data.test = std::move(test);
}

}  // namespace polytask::datasets
