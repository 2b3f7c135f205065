// The layer catalogue, as factory functions returning callable LayerRefs (Keras' names and
// defaults: 'valid' padding, Glorot-uniform kernels, zero biases).
#pragma once

#include <string>

#include "engine/graph.h"
#include "kernels/conv2d.h"

namespace polytask::layers {

using kernels::Padding;

enum class Activation { None, ReLU };

struct Conv2DOptions {
  int64_t stride = 1;
  Padding padding = Padding::Valid;
  Activation activation = Activation::None;
  bool use_bias = true;
  std::string name;  // empty: conv2d, conv2d_1, ...
};
LayerRef conv2d(int64_t filters, int64_t kernel_size, Conv2DOptions options = {});

struct DenseOptions {
  Activation activation = Activation::None;
  bool use_bias = true;
  std::string name;
};
LayerRef dense(int64_t units, DenseOptions options = {});
inline LayerRef dense(int64_t units, Activation activation, std::string name = "") {
  return dense(units, DenseOptions{activation, true, std::move(name)});
}

// pool_size x pool_size windows; stride 0 means stride = pool_size (Keras' default).
LayerRef max_pool2d(int64_t pool_size = 2, int64_t stride = 0, std::string name = "");
LayerRef relu(std::string name = "");
LayerRef flatten(std::string name = "");
// Elementwise sum of inputs of equal shape (a residual skip).
LayerRef add(std::string name = "");
// Concatenation along the first per-sample axis (channels, or features).
LayerRef concat(std::string name = "");

// Keras BatchNormalization semantics: momentum 0.99, epsilon 1e-3 (see kernels/batchnorm.h).
struct BatchNormOptions {
  double momentum = 0.99;
  double epsilon = 1e-3;
  std::string name;
};
LayerRef batch_norm(BatchNormOptions options = {});
LayerRef dropout(double rate, std::string name = "");

// ---- soft sharing (engine/layers/mixing.cpp) ----

// Softmax over a (features,) sample, the row maximum subtracted first: the gate of a mixture of
// experts.
LayerRef softmax(std::string name = "");

// MMoE's gated mixture of experts (Ma et al. 2018), called on {experts, gate}: experts (E·D,) is
// the E experts' outputs concatenated (expert e at features [e·D, (e+1)·D)), gate (E,) their
// weights (normally a softmax). Output (D,): y_j = Σ_e gate_e · experts_{e·D+j}.
LayerRef mixture(std::string name = "");

// One row of a cross-stitch unit (Misra et al. 2016), called on {x_0, ..., x_{T-1}}, 2 to 8
// inputs of one shape: y = Σ_s alpha_s · x_s with a learned alpha of shape (T,), the parameter
// "<name>.alpha". A unit for T tasks is T such layers, one per task, each listing its own task's
// activation first. alpha starts at self_weight for x_0 and (1 - self_weight) / (T - 1) for the
// others.
struct CrossStitchOptions {
  double self_weight = 0.9;  // in (0, 1]
  std::string name;
};
LayerRef cross_stitch(CrossStitchOptions options = {});

}  // namespace polytask::layers
