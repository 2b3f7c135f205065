// The built-in presets with the per-sample input shapes of the data each is meant for, and a
// random batch for any network (on either device): shared by the preset tests on the CPU and
// on the CUDA backend.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/network.h"
#include "engine/shape.h"

namespace polytask::models {

struct PresetCase {
  const char* name;
  const char* default_data;
  std::map<std::string, Shape> shapes;  // per sample, as the default data gives them
};

inline void PrintTo(const PresetCase& c, std::ostream* out) { *out << c.name; }

inline const std::vector<PresetCase>& preset_cases() {
  static const std::vector<PresetCase> cases = {
      {"mnist-digit-parity", "/usr/share/datasets/fashion-mnist", {{"image", {1, 28, 28}}}},
      // The colour rule tints the grey images: (3, 28, 28).
      {"mnist-digit-colour-residual",
       "/usr/share/datasets/fashion-mnist",
       {{"image", {3, 28, 28}}}},
      {"two-input-cls-reg", "synthetic:two-input", {{"a", {50}}, {"b", {100}}}},
      {"cifar-object-colour", "data/cifar-10", {{"image", {3, 32, 32}}}},
      {"fashion-type-brightness", "/usr/share/datasets/fashion-mnist", {{"image", {1, 28, 28}}}},
      {"fashion-three-tasks", "/usr/share/datasets/fashion-mnist", {{"image", {1, 28, 28}}}},
      // Two garments overlaid on a 36x36 canvas (datasets/multi.h).
      {"multi-fashion", "multi:/usr/share/datasets/fashion-mnist", {{"image", {1, 36, 36}}}},
      {"synthetic-cls-reg", "synthetic:rgb", {{"image", {3, 28, 28}}}},
  };
  return cases;
}

// "mnist_digit_parity": a GoogleTest parameter name.
inline std::string preset_test_name(const ::testing::TestParamInfo<PresetCase>& info) {
  std::string name = info.param.name;
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

// Random inputs in [0, 1] (like images), class indices in [0, classes), regression values in
// [0, 1]; written through host tensors, so the network may live on either device.
inline void fill_random_batch(Network& net, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  const auto upload = [](const Tensor& dst, const Tensor& host) {
    Tensor view = dst.view(host.shape());
    view.copy_from(host);
  };
  for (size_t i = 0; i < net.model().graph().inputs.size(); ++i) {
    const Tensor& in = net.input_buffer(i);
    std::vector<float> v(size_t(in.numel()));
    for (float& x : v) x = uniform(rng);
    upload(in, Tensor::from_vector(in.shape(), v));
  }
  for (size_t t = 0; t < net.tasks().size(); ++t) {
    const Tensor& target = net.target_buffer(t);
    if (target.dtype() == DType::I32) {
      const int64_t classes = net.model().output(net.tasks()[t].output_name()).value.shape()[0];
      std::vector<int32_t> v(size_t(target.numel()));
      for (int32_t& x : v) x = int32_t(rng() % uint64_t(classes));
      upload(target, Tensor::from_vector(target.shape(), v));
    } else {
      std::vector<float> v(size_t(target.numel()));
      for (float& x : v) x = uniform(rng);
      upload(target, Tensor::from_vector(target.shape(), v));
    }
  }
}

}  // namespace polytask::models
