// The layers that mix representations in multi-task architectures: Softmax (the gate of a
// mixture of experts), Mixture (MMoE's gated sum of experts) and CrossStitch (one row of a
// cross-stitch unit, with its learned alpha).
#include "kernels/mixing.h"

#include <array>

#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/layers.h"

namespace polytask::layers {

namespace {

constexpr int kMaxStitchInputs = kernels::kMaxCrossStitchInputs;

// A gradient buffer, or null where the input needs none (the kernels skip it).
template <class T>
T* grad_or_null(const Tensor& dx) {
  return dx.defined() ? dx.data<T>() : nullptr;
}

class Softmax final : public Layer {
 public:
  Softmax() : Layer("softmax") {}
  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    if (in[0].rank() != 1)
      error(cat("expects a (features,) input, got ", in[0],
                in[0].rank() > 1 ? "; add a flatten layer before it" : ""));
    mark_built();
    return in[0];
  }
  bool has_cuda_kernels() const override { return true; }
  void forward(const LayerCall& c) override {
    const int64_t rows = c.y.dim(0), features = c.y.dim(1);
    dispatch(
        "softmax forward", c.y,
        [&]<class T>() {
          kernels::cpu::softmax_forward<T>(rows, features, c.x[0].data<T>(), c.y.data<T>());
        },
        [&](auto stream) {
          kernels::cuda::softmax_forward(rows, features, c.x[0].data<float>(), c.y.data<float>(),
                                         stream);
        });
  }
  // From the forward's output: softmax needs nothing else.
  void backward(const LayerCall& c) override {
    if (!c.dx[0].defined()) return;
    const int64_t rows = c.y.dim(0), features = c.y.dim(1);
    dispatch(
        "softmax backward", c.dy,
        [&]<class T>() {
          kernels::cpu::softmax_backward<T>(rows, features, c.y.data<T>(), c.dy.data<T>(),
                                            c.dx[0].data<T>(), c.dx_mode[0]);
        },
        [&](auto stream) {
          kernels::cuda::softmax_backward(rows, features, c.y.data<float>(), c.dy.data<float>(),
                                          c.dx[0].data<float>(), c.dx_mode[0], stream);
        });
  }
};

class Mixture final : public Layer {
 public:
  Mixture() : Layer("mixture") {}
  Shape build(const std::vector<Shape>& in) override {
    if (in.size() != 2) error(cat("expects 2 inputs (experts, gate), got ", in.size()));
    const Shape &experts = in[0], &gate = in[1];
    const bool fits = experts.rank() == 1 && gate.rank() == 1 && gate[0] > 0 &&
                      experts[0] >= gate[0] && experts[0] % gate[0] == 0;
    if (!fits)
      error(cat("cannot mix experts of shape ", experts, " with a gate of shape ", gate,
                ": the gate is (E,) for E experts and the experts (E·D,), their D-feature "
                "outputs concatenated"));
    mark_built();
    return {experts[0] / gate[0]};
  }
  bool has_cuda_kernels() const override { return true; }
  void forward(const LayerCall& c) override {
    const kernels::MixtureShape s = shape(c);
    dispatch(
        "mixture forward", c.y,
        [&]<class T>() {
          kernels::cpu::mixture_forward<T>(s, c.x[0].data<T>(), c.x[1].data<T>(), c.y.data<T>());
        },
        [&](auto stream) {
          kernels::cuda::mixture_forward(s, c.x[0].data<float>(), c.x[1].data<float>(),
                                         c.y.data<float>(), stream);
        });
  }
  // One call for both gradients, each in its own mode (a null one is skipped). The experts'
  // gradient is written first, so one buffer for both (a value passed as experts and gate)
  // receives the sum when the plan gives the gate Accumulate.
  void backward(const LayerCall& c) override {
    const kernels::MixtureShape s = shape(c);
    if (!c.dx[0].defined() && !c.dx[1].defined()) return;
    dispatch(
        "mixture backward", c.dy,
        [&]<class T>() {
          kernels::cpu::mixture_backward<T>(s, c.x[0].data<T>(), c.x[1].data<T>(), c.dy.data<T>(),
                                            grad_or_null<T>(c.dx[0]), c.dx_mode[0],
                                            grad_or_null<T>(c.dx[1]), c.dx_mode[1]);
        },
        [&](auto stream) {
          kernels::cuda::mixture_backward(s, c.x[0].data<float>(), c.x[1].data<float>(),
                                          c.dy.data<float>(), grad_or_null<float>(c.dx[0]),
                                          c.dx_mode[0], grad_or_null<float>(c.dx[1]), c.dx_mode[1],
                                          stream);
        });
  }

 private:
  static kernels::MixtureShape shape(const LayerCall& c) {
    const int64_t experts = c.x[1].dim(1);
    return {c.y.dim(0), experts, c.y.dim(1)};
  }
};

class CrossStitch final : public Layer {
 public:
  explicit CrossStitch(double self_weight) : Layer("cross_stitch"), self_weight_(self_weight) {
    if (!(self_weight > 0 && self_weight <= 1))
      fail("cross_stitch: self_weight must be in (0, 1], got ", self_weight);
  }

  Shape build(const std::vector<Shape>& in) override {
    const int inputs = int(in.size());
    if (inputs < 2 || inputs > kMaxStitchInputs)
      error(cat("expects 2 to ", kMaxStitchInputs, " inputs, got ", in.size()));
    for (size_t i = 1; i < in.size(); ++i)
      if (!(in[i] == in[0]))
        error(cat("input ", i, " has shape ", in[i], ", input 0 ", in[0],
                  "; a cross-stitch mixes activations of one shape"));
    if (!built()) {
      // Misra et al. start alpha as a convex combination that favours the task's own
      // activation: (alpha_S, alpha_D) = (0.9, 0.1) for two tasks, the best of the starting
      // points they compared. With T inputs the others share 1 - alpha_S equally, so alpha
      // still sums to 1 and the unit starts by passing on mostly its own task's features.
      Parameter& alpha = add_parameter("alpha", {int64_t(inputs)}, Init::Values);
      alpha.values.assign(size_t(inputs), (1.0 - self_weight_) / double(inputs - 1));
      alpha.values[0] = self_weight_;
    } else if (parameter(0).shape[0] != inputs) {
      error(cat("was built for ", parameter(0).shape[0], " inputs, called with ", inputs));
    }
    return in[0];
  }

  bool has_cuda_kernels() const override { return true; }

  void forward(const LayerCall& c) override {
    const int inputs = int(c.x.size());
    dispatch(
        "cross_stitch forward", c.y,
        [&]<class T>() {
          const auto xs = pointers<T>(c);
          kernels::cpu::cross_stitch_forward<T>(c.y.numel(), inputs, xs.data(), alpha<T>(),
                                                c.y.data<T>());
        },
        [&](auto stream) {
          const auto xs = pointers<float>(c);
          kernels::cuda::cross_stitch_forward(c.y.numel(), inputs, xs.data(), alpha<float>(),
                                              c.y.data<float>(), stream);
        });
  }

  // Each input's gradient is its own call in its own mode, so an input passed twice (one
  // buffer: Overwrite, then Accumulate) receives the sum of both terms.
  void backward(const LayerCall& c) override {
    const int inputs = int(c.x.size());
    const int64_t count = c.dy.numel();
    dispatch(
        "cross_stitch backward", c.dy,
        [&]<class T>() {
          for (int s = 0; s < inputs; ++s)
            if (c.dx[size_t(s)].defined())
              kernels::cpu::cross_stitch_backward_input<T>(count, alpha<T>(), s, c.dy.data<T>(),
                                                           c.dx[size_t(s)].data<T>(),
                                                           c.dx_mode[size_t(s)]);
          const auto xs = pointers<T>(c);
          kernels::cpu::cross_stitch_backward_alpha<T>(count, inputs, xs.data(), c.dy.data<T>(),
                                                       parameter(0).grad.data<T>(), c.param_mode);
        },
        [&](auto stream) {
          for (int s = 0; s < inputs; ++s)
            if (c.dx[size_t(s)].defined())
              kernels::cuda::cross_stitch_backward_input(
                  count, alpha<float>(), s, c.dy.data<float>(), c.dx[size_t(s)].data<float>(),
                  c.dx_mode[size_t(s)], stream);
          const auto xs = pointers<float>(c);
          kernels::cuda::cross_stitch_backward_alpha(count, inputs, xs.data(), c.dy.data<float>(),
                                                     parameter(0).grad.data<float>(), c.param_mode,
                                                     cuda_reduce_partials(), stream);
        });
  }

 private:
  template <class T>
  const T* alpha() const {
    return parameter(0).value.data<T>();
  }
  template <class T>
  static std::array<const T*, kMaxStitchInputs> pointers(const LayerCall& c) {
    std::array<const T*, kMaxStitchInputs> xs{};
    for (size_t s = 0; s < c.x.size(); ++s) xs[s] = c.x[s].data<T>();
    return xs;
  }

  double self_weight_;
};

}  // namespace

LayerRef softmax(std::string name) {
  auto layer = std::make_shared<Softmax>();
  if (!name.empty()) layer->set_name(std::move(name));
  return LayerRef(layer);
}

LayerRef mixture(std::string name) {
  auto layer = std::make_shared<Mixture>();
  if (!name.empty()) layer->set_name(std::move(name));
  return LayerRef(layer);
}

LayerRef cross_stitch(CrossStitchOptions options) {
  auto layer = std::make_shared<CrossStitch>(options.self_weight);
  if (!options.name.empty()) layer->set_name(std::move(options.name));
  return LayerRef(layer);
}

}  // namespace polytask::layers
