// Conv2D and MaxPool2D over (C, H, W) samples.
#include <algorithm>

#include "engine/dispatch.h"
#include "engine/layers.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/pool2d.h"

namespace polytask::layers {

namespace {

Shape expect_image(const Layer& layer, const Shape& s, const char* what) {
  if (s.rank() != 3)
    fail(layer.name(), " (", layer.kind(), "): expects a (channels, height, width) input, got ",
         s, what);
  return s;
}

class Conv2D final : public Layer {
 public:
  Conv2D(int64_t filters, int64_t kernel, Conv2DOptions o)
      : Layer("conv2d"), filters_(filters), kernel_(kernel), options_(std::move(o)) {
    if (filters <= 0 || kernel <= 0 || options_.stride <= 0)
      fail("conv2d: filters, kernel size and stride must be positive (got ", filters, ", ",
           kernel, ", ", options_.stride, ")");
  }

  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    const Shape x = expect_image(*this, in[0], "");
    if (!built()) {
      const int64_t area = kernel_ * kernel_;
      add_parameter("weight", {filters_, x[0], kernel_, kernel_}, Init::GlorotUniform,
                    x[0] * area, filters_ * area);
      if (options_.use_bias) add_parameter("bias", {filters_}, Init::Zeros);
    } else if (parameter(0).shape[1] != x[0]) {
      error(cat("was built for ", parameter(0).shape[1], " input channels, called on ", x));
    }
    try {
      const auto s = geometry(x, 1);
      return {s.c_out, s.h_out, s.w_out};
    } catch (const Error& e) {
      error(cat(e.what(), " (input ", x, ")"));
    }
  }

  bool has_cuda_kernels() const override { return true; }
  bool can_fuse_relu() const override { return true; }

  // Enough for either device's kernels (the plan sizes one workspace before it knows which
  // kernels will run in it).
  int64_t workspace_elements(const std::vector<Shape>& in, int64_t batch) const override {
    const auto s = geometry(in[0], batch);
    int64_t elements = kernels::cpu::conv2d_workspace_elements(s);
#if defined(POLYTASK_WITH_CUDA)
    elements = std::max(elements, kernels::cuda::conv2d_workspace_elements(s));
#endif
    return elements;
  }

  void forward(const LayerCall& c) override {
    const auto s = geometry(c.x[0].shape().sample(), c.x[0].dim(0));
    dispatch(
        "conv2d forward", c.y,
        [&]<class T>() {
          kernels::cpu::conv2d_forward<T>(s, c.x[0].data<T>(), parameter(0).value.data<T>(),
                                          bias<T>(), c.y.data<T>(), c.workspace.data<T>(),
                                          c.fuse_relu);
        },
        [&](auto stream) {
          kernels::cuda::conv2d_forward(s, c.x[0].data<float>(), parameter(0).value.data<float>(),
                                        bias<float>(), c.y.data<float>(),
                                        c.workspace.data<float>(), stream, {c.fuse_relu},
                                        tuning(c));
        });
  }

  void backward(const LayerCall& c) override {
    const auto s = geometry(c.x[0].shape().sample(), c.x[0].dim(0));
    dispatch(
        "conv2d backward", c.dy,
        [&]<class T>() {
          kernels::cpu::conv2d_backward_filter<T>(s, c.x[0].data<T>(), c.dy.data<T>(),
                                                  parameter(0).grad.data<T>(), bias_grad<T>(),
                                                  c.param_mode, c.workspace.data<T>());
          if (c.dx[0].defined())
            kernels::cpu::conv2d_backward_data<T>(s, c.dy.data<T>(), parameter(0).value.data<T>(),
                                                  c.dx[0].data<T>(), c.dx_mode[0],
                                                  c.workspace.data<T>());
        },
        [&](auto stream) {
          kernels::cuda::conv2d_backward_filter(s, c.x[0].data<float>(), c.dy.data<float>(),
                                                parameter(0).grad.data<float>(),
                                                bias_grad<float>(), c.param_mode,
                                                c.workspace.data<float>(), stream, tuning(c));
          if (c.dx[0].defined())
            kernels::cuda::conv2d_backward_data(s, c.dy.data<float>(),
                                                parameter(0).value.data<float>(),
                                                c.dx[0].data<float>(), c.dx_mode[0],
                                                c.workspace.data<float>(), stream, tuning(c));
        });
  }

 private:
  static kernels::cuda::Conv2dTuning tuning(const LayerCall& c) {
    kernels::cuda::Conv2dTuning t;
    t.precision = c.precision;
    return t;
  }
  kernels::Conv2dShape geometry(const Shape& x, int64_t batch) const {
    return kernels::conv2d_shape(batch, x[0], x[1], x[2], filters_, kernel_, kernel_,
                                 options_.stride, options_.stride, options_.padding);
  }
  template <class T>
  const T* bias() const {
    return options_.use_bias ? parameter(1).value.data<T>() : nullptr;
  }
  template <class T>
  T* bias_grad() const {
    return options_.use_bias ? parameter(1).grad.data<T>() : nullptr;
  }

  int64_t filters_, kernel_;
  Conv2DOptions options_;
};

class MaxPool2D final : public Layer {
 public:
  MaxPool2D(int64_t pool, int64_t stride) : Layer("max_pool2d"), pool_(pool), stride_(stride ? stride : pool) {
    if (pool_ <= 0 || stride_ <= 0)
      fail("max_pool2d: pool size and stride must be positive (got ", pool, ", ", stride, ")");
  }

  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    const Shape x = expect_image(*this, in[0], "");
    mark_built();
    try {
      const auto s = geometry(x, 1);
      return {s.c, s.h_out, s.w_out};
    } catch (const Error& e) {
      error(cat(e.what(), " (input ", x, ")"));
    }
  }

  std::vector<AuxSpec> aux(const std::vector<Shape>& in, int64_t batch) const override {
    const auto s = geometry(in[0], batch);
    return {AuxSpec{{batch, s.c, s.h_out, s.w_out}, true, true}};
  }

  bool has_cuda_kernels() const override { return true; }
  // Each window's maximum is the ReLU's output at the input its argmax names, so the ReLU's
  // gate (output > 0) is known from y without the ReLU's own activation.
  bool can_fuse_relu_backward() const override { return true; }

  void forward(const LayerCall& c) override {
    const auto s = geometry(c.x[0].shape().sample(), c.x[0].dim(0));
    dispatch(
        "max_pool2d forward", c.y,
        [&]<class T>() {
          kernels::cpu::max_pool2d_forward<T>(s, c.x[0].data<T>(), c.y.data<T>(),
                                              c.aux[0].data<int32_t>());
        },
        [&](auto stream) {
          kernels::cuda::max_pool2d_forward(s, c.x[0].data<float>(), c.y.data<float>(),
                                            c.aux[0].data<int32_t>(), stream);
        });
  }

  void backward(const LayerCall& c) override {
    if (!c.dx[0].defined()) return;
    const auto s = geometry(c.x[0].shape().sample(), c.x[0].dim(0));
    dispatch(
        "max_pool2d backward", c.dy,
        [&]<class T>() {
          kernels::cpu::max_pool2d_backward<T>(s, c.dy.data<T>(), c.aux[0].data<int32_t>(),
                                               c.dx[0].data<T>(), c.dx_mode[0],
                                               c.relu_backward ? c.y.data<T>() : nullptr);
        },
        [&](auto stream) {
          kernels::cuda::max_pool2d_backward(s, c.dy.data<float>(), c.aux[0].data<int32_t>(),
                                             c.dx[0].data<float>(), c.dx_mode[0], stream,
                                             c.relu_backward ? c.y.data<float>() : nullptr);
        });
  }

 private:
  kernels::MaxPool2dShape geometry(const Shape& x, int64_t batch) const {
    return kernels::max_pool2d_shape(batch, x[0], x[1], x[2], pool_, pool_, stride_, stride_);
  }
  int64_t pool_, stride_;
};

}  // namespace

std::shared_ptr<Layer> make_relu_layer(std::string name);

LayerRef conv2d(int64_t filters, int64_t kernel_size, Conv2DOptions options) {
  const auto activation = options.activation;
  auto layer = std::make_shared<Conv2D>(filters, kernel_size, options);
  if (!options.name.empty()) layer->set_name(options.name);
  return LayerRef(layer, activation == Activation::ReLU ? make_relu_layer("") : nullptr);
}

LayerRef max_pool2d(int64_t pool_size, int64_t stride, std::string name) {
  auto layer = std::make_shared<MaxPool2D>(pool_size, stride);
  if (!name.empty()) layer->set_name(std::move(name));
  return LayerRef(layer);
}

}  // namespace polytask::layers
