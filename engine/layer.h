// The contract between the engine and an operation with (optional) parameters.
//
// A Layer is created once and may be called several times in a graph (a layer called twice
// shares its weights, as in Keras). At graph-build time `build` checks the input shapes and
// creates the parameters on the first call; at run time the plan hands each call a LayerCall
// with pre-allocated, batch-sliced tensors.
//
// Contract (tested for every layer):
//  - forward overwrites y and the call's aux tensors; it may read parameters;
//  - backward writes dx[i] (where defined) according to dx_mode[i], and every parameter
//    gradient according to param_mode — Overwrite for the first writer in a step, Accumulate
//    for later ones, so shared tensors and shared weights receive sums;
//  - neither allocates: scratch comes from `workspace`.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/communicator.h"
#include "engine/tensor.h"
#include "kernels/grad_mode.h"
#include "kernels/precision.h"

namespace polytask {

using kernels::GradMode;

// LayerCall::stream = (step << kStepShift) + the call's index in the plan.
inline constexpr unsigned kStepShift = 20;

// How Network::initialize sets a parameter: Values copies Parameter::values (a layer's own
// starting point that no formula gives, e.g. a cross-stitch unit's alpha).
enum class Init { Zeros, Ones, GlorotUniform, Values };

struct Parameter {
  std::string name;  // the layer path, e.g. "conv2d_1.weight": also the checkpoint key
  Shape shape;
  Init init = Init::Zeros;
  int64_t fan_in = 0, fan_out = 0;  // for Glorot initialisation
  std::vector<double> values;       // for Init::Values: one per element, in row-major order
  bool trainable = true;            // false for BatchNorm running statistics
  Tensor value;                     // set when a network is compiled
  Tensor grad;                      // trainable parameters only
  const void* owner = nullptr;      // the network these tensors belong to, while it lives
};

// A per-call buffer that forward leaves for backward (pooling argmax, BatchNorm batch
// statistics, softmax probabilities...).
struct AuxSpec {
  Shape shape;        // full shape; for batched aux the leading axis is the batch
  bool batched = true;
  bool integer = false;  // I32 instead of the compute dtype
};

struct LayerCall {
  std::span<const Tensor> x;  // inputs, (batch, ...)
  Tensor y;                   // output, (batch, ...)
  std::span<const Tensor> aux;
  Tensor workspace;  // flat scratch of the compute dtype, at least workspace_elements long
  bool training = true;
  uint64_t seed = 0;    // the network's seed
  uint64_t stream = 0;  // unique per (call, step): random draws (dropout) key on it
  // Inside a CUDA graph the step is read on the device: then stream's step part is stale and
  // the draw is (*device_step << kStepShift) + (stream's call part).
  const uint64_t* device_step = nullptr;
  // Data-parallel training (engine/communicator.h): this batch is rows [first_row, first_row +
  // batch) of the step's global batch. Random draws key on the global row, so every rank draws
  // what one process would for the same rows.
  int64_t first_row = 0;
  // Synchronised BatchNorm (--sync-batchnorm): when set, a training-mode BatchNorm normalises
  // with the statistics of every rank's rows (global_rows in all), reduced through it, and
  // backward reduces its per-channel sums the same way. Null: statistics of this batch only.
  Communicator* sync_batchnorm = nullptr;
  int64_t global_rows = 0;
  // Forward only: y = relu(the layer's output) (can_fuse_relu layers; the plan sets it when a
  // ReLU is the output's only reader, and hands the ReLU's output buffer as y).
  bool fuse_relu = false;
  // The GPU's GEMM/convolution arithmetic (NetworkOptions::precision); the CPU computes exactly.
  kernels::MathPrecision precision = kernels::MathPrecision::FP32;

  // Backward only.
  // dx[0] is the gradient of the input of a ReLU whose output is this layer's input (the plan
  // sets it for can_fuse_relu_backward layers and skips that ReLU's backward).
  bool relu_backward = false;
  Tensor dy;
  std::span<const Tensor> dx;  // undefined where an input needs no gradient
  std::span<const GradMode> dx_mode;
  GradMode param_mode = GradMode::Overwrite;
};

class Layer {
 public:
  explicit Layer(std::string kind) : kind_(std::move(kind)) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  const std::string& kind() const { return kind_; }
  const std::string& name() const { return name_; }
  void set_name(std::string name);

  // Sample shapes (without the batch axis) in, output sample shape out. Throws polytask::Error
  // naming the layer and the shapes when they do not fit. Creates parameters on the first call;
  // later calls must fit the same parameters.
  virtual Shape build(const std::vector<Shape>& inputs) = 0;

  virtual std::vector<AuxSpec> aux(const std::vector<Shape>& inputs, int64_t batch) const;
  virtual int64_t workspace_elements(const std::vector<Shape>& inputs, int64_t batch) const;
  // Whether backward can produce the gradient of input i (false e.g. for integer inputs).
  virtual bool differentiable() const { return true; }
  // Whether forward and backward have CUDA kernels (f32); `--device auto` picks the GPU only
  // for models whose every layer has them.
  virtual bool has_cuda_kernels() const { return false; }
  // Whether forward can apply a ReLU to its output in the same pass (LayerCall::fuse_relu):
  // the plan then skips the ReLU call that follows, saving a pass over the activation.
  virtual bool can_fuse_relu() const { return false; }
  // Whether backward can also apply the backward of a ReLU before it (LayerCall::relu_backward),
  // from what the layer itself kept: the plan then skips that ReLU's backward pass.
  virtual bool can_fuse_relu_backward() const { return false; }

  virtual void forward(const LayerCall& call) = 0;
  virtual void backward(const LayerCall& call) = 0;

  std::vector<std::unique_ptr<Parameter>>& parameters() { return parameters_; }
  const std::vector<std::unique_ptr<Parameter>>& parameters() const { return parameters_; }

 protected:
  Parameter& add_parameter(const std::string& suffix, const Shape& shape, Init init,
                           int64_t fan_in = 0, int64_t fan_out = 0, bool trainable = true);
  Parameter& parameter(size_t i) const { return *parameters_[i]; }
  bool built() const { return !parameters_.empty() || built_without_parameters_; }
  void mark_built() { built_without_parameters_ = true; }
  // "dense_1 (dense): <message>"
  [[noreturn]] void error(const std::string& message) const;
  void expect_inputs(const std::vector<Shape>& inputs, size_t count) const;

 private:
  std::string kind_;
  std::string name_;
  std::vector<std::unique_ptr<Parameter>> parameters_;
  bool built_without_parameters_ = false;
};

}  // namespace polytask
