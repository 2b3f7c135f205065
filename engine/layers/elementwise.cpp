// Parameter-free layers: ReLU, Flatten, Add (residual skip), Concat (multi-input models).
#include <array>
#include <numeric>

#include "engine/dispatch.h"
#include "engine/layers.h"
#include "kernels/elementwise.h"

namespace polytask::layers {

namespace {

// dx = dy (or dx += dy): the gradient of flatten and of each input of add.
void pass_gradient(const char* op, const Tensor& dy, const Tensor& dx, GradMode mode) {
  dispatch(
      op, dy,
      [&]<class T>() { kernels::cpu::scale_grad<T>(dy.numel(), T(1), dy.data<T>(), dx.data<T>(), mode); },
      [&](auto stream) {
        kernels::cuda::scale_grad(dy.numel(), 1.0f, dy.data<float>(), dx.data<float>(), mode, stream);
      });
}

class ReLU final : public Layer {
 public:
  ReLU() : Layer("relu") {}
  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    mark_built();
    return in[0];
  }
  bool has_cuda_kernels() const override { return true; }
  void forward(const LayerCall& c) override {
    dispatch(
        "relu forward", c.y,
        [&]<class T>() { kernels::cpu::relu_forward<T>(c.y.numel(), c.x[0].data<T>(), c.y.data<T>()); },
        [&](auto stream) {
          kernels::cuda::relu_forward(c.y.numel(), c.x[0].data<float>(), c.y.data<float>(), stream);
        });
  }
  void backward(const LayerCall& c) override {
    if (!c.dx[0].defined()) return;
    dispatch(
        "relu backward", c.dy,
        [&]<class T>() {
          kernels::cpu::relu_backward<T>(c.y.numel(), c.y.data<T>(), c.dy.data<T>(),
                                         c.dx[0].data<T>(), c.dx_mode[0]);
        },
        [&](auto stream) {
          kernels::cuda::relu_backward(c.y.numel(), c.y.data<float>(), c.dy.data<float>(),
                                       c.dx[0].data<float>(), c.dx_mode[0], stream);
        });
  }
};

// Flatten copies rather than aliasing its input so that every value owns its buffer and the
// plan's one-buffer-per-value rule needs no exceptions; the copy is tiny next to the GEMMs.
class Flatten final : public Layer {
 public:
  Flatten() : Layer("flatten") {}
  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    mark_built();
    return {in[0].numel()};
  }
  bool has_cuda_kernels() const override { return true; }
  void forward(const LayerCall& c) override {
    dispatch(
        "flatten forward", c.y,
        [&]<class T>() { kernels::cpu::copy<T>(c.y.numel(), c.x[0].data<T>(), c.y.data<T>()); },
        [&](auto stream) {
          kernels::cuda::copy(c.y.numel(), c.x[0].data<float>(), c.y.data<float>(), stream);
        });
  }
  void backward(const LayerCall& c) override {
    if (c.dx[0].defined()) pass_gradient("flatten backward", c.dy, c.dx[0], c.dx_mode[0]);
  }
};

class Add final : public Layer {
 public:
  Add() : Layer("add") {}
  Shape build(const std::vector<Shape>& in) override {
    if (in.size() != 2) error(cat("expects 2 inputs, got ", in.size()));
    if (!(in[0] == in[1])) error(cat("cannot add inputs of shapes ", in[0], " and ", in[1]));
    mark_built();
    return in[0];
  }
  bool has_cuda_kernels() const override { return true; }
  void forward(const LayerCall& c) override {
    dispatch(
        "add forward", c.y,
        [&]<class T>() {
          kernels::cpu::add_forward<T>(c.y.numel(), c.x[0].data<T>(), c.x[1].data<T>(), c.y.data<T>());
        },
        [&](auto stream) {
          kernels::cuda::add_forward(c.y.numel(), c.x[0].data<float>(), c.x[1].data<float>(),
                                     c.y.data<float>(), stream);
        });
  }
  void backward(const LayerCall& c) override {
    for (size_t i = 0; i < 2; ++i)
      if (c.dx[i].defined()) pass_gradient("add backward", c.dy, c.dx[i], c.dx_mode[i]);
  }
};

class Concat final : public Layer {
 public:
  Concat() : Layer("concat") {}
  static constexpr int kMaxParts = 8;

  Shape build(const std::vector<Shape>& in) override {
    if (in.size() < 2 || in.size() > kMaxParts)
      error(cat("expects 2 to ", kMaxParts, " inputs, got ", in.size()));
    Shape out = in[0];
    for (size_t i = 1; i < in.size(); ++i) {
      bool fits = in[i].rank() == out.rank();
      for (int a = 1; fits && a < out.rank(); ++a) fits = in[i][a] == out[a];
      if (!fits)
        error(cat("input ", i, " has shape ", in[i], ", which cannot be concatenated with ",
                  in[0], " along the first axis"));
      out[0] += in[i][0];
    }
    mark_built();
    return out;
  }
  bool has_cuda_kernels() const override { return true; }
  void forward(const LayerCall& c) override {
    int64_t inner[kMaxParts];
    const int parts = part_sizes(c, inner);
    const auto sources = [&]<class T>(std::array<const T*, kMaxParts>& src) {
      for (int i = 0; i < parts; ++i) src[size_t(i)] = c.x[size_t(i)].data<T>();
      return src.data();
    };
    dispatch(
        "concat forward", c.y,
        [&]<class T>() {
          std::array<const T*, kMaxParts> src{};
          kernels::cpu::concat_forward<T>(c.y.dim(0), parts, inner, sources(src), c.y.data<T>());
        },
        [&](auto stream) {
          std::array<const float*, kMaxParts> src{};
          kernels::cuda::concat_forward(c.y.dim(0), parts, inner, sources(src), c.y.data<float>(),
                                        stream);
        });
  }
  void backward(const LayerCall& c) override {
    int64_t inner[kMaxParts];
    const int parts = part_sizes(c, inner);
    // Each dx is a distinct buffer with its own grad mode, so the call is split per input,
    // the others left null (skipped).
    for (int i = 0; i < parts; ++i) {
      if (!c.dx[size_t(i)].defined()) continue;
      dispatch(
          "concat backward", c.dy,
          [&]<class T>() {
            std::array<T*, kMaxParts> one{};
            one[size_t(i)] = c.dx[size_t(i)].data<T>();
            kernels::cpu::concat_backward<T>(c.dy.dim(0), parts, inner, c.dy.data<T>(), one.data(),
                                             c.dx_mode[size_t(i)]);
          },
          [&](auto stream) {
            std::array<float*, kMaxParts> one{};
            one[size_t(i)] = c.dx[size_t(i)].data<float>();
            kernels::cuda::concat_backward(c.dy.dim(0), parts, inner, c.dy.data<float>(),
                                           one.data(), c.dx_mode[size_t(i)], stream);
          });
    }
  }

 private:
  static int part_sizes(const LayerCall& c, int64_t* inner) {
    const int parts = int(c.x.size());
    for (int i = 0; i < parts; ++i) inner[i] = c.x[i].numel() / std::max<int64_t>(c.x[i].dim(0), 1);
    return parts;
  }
};

template <class L>
LayerRef named(std::string name) {
  auto layer = std::make_shared<L>();
  if (!name.empty()) layer->set_name(std::move(name));
  return LayerRef(layer);
}

}  // namespace

std::shared_ptr<Layer> make_relu_layer(std::string name) {
  auto layer = std::make_shared<ReLU>();
  if (!name.empty()) layer->set_name(std::move(name));
  return layer;
}

LayerRef relu(std::string name) { return named<ReLU>(std::move(name)); }
LayerRef flatten(std::string name) { return named<Flatten>(std::move(name)); }
LayerRef add(std::string name) { return named<Add>(std::move(name)); }
LayerRef concat(std::string name) { return named<Concat>(std::move(name)); }

}  // namespace polytask::layers
