#include "models/presets.h"

#include "engine/layers.h"

namespace polytask::models {

namespace {

using layers::Activation;

// The Keras tutorial's digit + parity network: Conv32-3x3-ReLU -> MaxPool2 -> Conv64-3x3-ReLU
// -> MaxPool2 -> Flatten -> Dense128-ReLU, heads Dense10 (digit) and Dense2 (parity), loss
// weights 1.0 and 0.5.
Preset digit_parity(const Shape& image) {
  ModelBuilder b;
  Value x = b.input("image", image);
  Value h = layers::conv2d(32, 3, {.activation = Activation::ReLU})(x);
  h = layers::max_pool2d(2)(h);
  h = layers::conv2d(64, 3, {.activation = Activation::ReLU})(h);
  h = layers::max_pool2d(2)(h);
  h = layers::flatten()(h);
  Value z = layers::dense(128, Activation::ReLU, "shared")(h);
  Value digit = layers::dense(10, Activation::None, "digit")(z);
  Value parity = layers::dense(2, Activation::None, "parity")(z);
  Preset p{b.build({{"digit", digit}, {"parity", parity}}), {}};
  p.tasks.push_back(Task{.name = "digit", .loss = LossKind::SoftmaxCrossEntropy, .weight = 1.0});
  p.tasks.push_back(Task{.name = "parity", .loss = LossKind::SoftmaxCrossEntropy, .weight = 0.5});
  return p;
}

}  // namespace

std::vector<PresetInfo> list_presets() {
  return {{"mnist-digit-parity",
           "Conv32-Pool-Conv64-Pool-Dense128 trunk; digit (10-way) and parity (2-way) softmax "
           "heads, loss weights 1.0/0.5"}};
}

Preset make_preset(const std::string& name, const Shape& image_shape) {
  if (name == "mnist-digit-parity") return digit_parity(image_shape);
  std::string known;
  for (const auto& p : list_presets()) known += (known.empty() ? "" : ", ") + p.name;
  fail("unknown preset '", name, "' (known presets: ", known, ")");
}

}  // namespace polytask::models
