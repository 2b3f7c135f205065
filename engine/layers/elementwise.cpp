// Parameter-free layers: ReLU, Flatten, Add (residual skip), Concat (multi-input models).
#include <numeric>

#include "engine/dispatch.h"
#include "engine/layers.h"
#include "kernels/elementwise.h"

namespace polytask::layers {

namespace {

class ReLU final : public Layer {
 public:
  ReLU() : Layer("relu") {}
  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    mark_built();
    return in[0];
  }
  void forward(const LayerCall& c) override {
    dispatch_cpu_float("relu forward", c.y, [&]<class T>() {
      kernels::cpu::relu_forward<T>(c.y.numel(), c.x[0].data<T>(), c.y.data<T>());
    });
  }
  void backward(const LayerCall& c) override {
    if (!c.dx[0].defined()) return;
    dispatch_cpu_float("relu backward", c.dy, [&]<class T>() {
      kernels::cpu::relu_backward<T>(c.y.numel(), c.y.data<T>(), c.dy.data<T>(),
                                     c.dx[0].data<T>(), c.dx_mode[0]);
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
  void forward(const LayerCall& c) override {
    dispatch_cpu_float("flatten forward", c.y, [&]<class T>() {
      kernels::cpu::copy<T>(c.y.numel(), c.x[0].data<T>(), c.y.data<T>());
    });
  }
  void backward(const LayerCall& c) override {
    if (!c.dx[0].defined()) return;
    dispatch_cpu_float("flatten backward", c.dy, [&]<class T>() {
      kernels::cpu::scale_grad<T>(c.dy.numel(), T(1), c.dy.data<T>(), c.dx[0].data<T>(),
                                  c.dx_mode[0]);
    });
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
  void forward(const LayerCall& c) override {
    dispatch_cpu_float("add forward", c.y, [&]<class T>() {
      kernels::cpu::add_forward<T>(c.y.numel(), c.x[0].data<T>(), c.x[1].data<T>(), c.y.data<T>());
    });
  }
  void backward(const LayerCall& c) override {
    dispatch_cpu_float("add backward", c.dy, [&]<class T>() {
      for (size_t i = 0; i < 2; ++i)
        if (c.dx[i].defined())
          kernels::cpu::scale_grad<T>(c.dy.numel(), T(1), c.dy.data<T>(), c.dx[i].data<T>(),
                                      c.dx_mode[i]);
    });
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
  void forward(const LayerCall& c) override {
    int64_t inner[kMaxParts];
    const int parts = part_sizes(c, inner);
    dispatch_cpu_float("concat forward", c.y, [&]<class T>() {
      const T* src[kMaxParts];
      for (int i = 0; i < parts; ++i) src[i] = c.x[i].data<T>();
      kernels::cpu::concat_forward<T>(c.y.dim(0), parts, inner, src, c.y.data<T>());
    });
  }
  void backward(const LayerCall& c) override {
    int64_t inner[kMaxParts];
    const int parts = part_sizes(c, inner);
    dispatch_cpu_float("concat backward", c.dy, [&]<class T>() {
      T* dst[kMaxParts];
      for (int i = 0; i < parts; ++i) dst[i] = c.dx[i].defined() ? c.dx[i].data<T>() : nullptr;
      // All parts share the mode rule: each dx is a distinct buffer with its own mode, so
      // split the call per mode.
      for (int i = 0; i < parts; ++i) {
        T* one[kMaxParts] = {};
        one[i] = dst[i];
        if (dst[i])
          kernels::cpu::concat_backward<T>(c.dy.dim(0), parts, inner, c.dy.data<T>(), one,
                                           c.dx_mode[i]);
      }
    });
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
