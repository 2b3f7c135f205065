// BatchNorm (per channel of (C, H, W) samples, per feature of (F,) samples) and Dropout.
#include "engine/dispatch.h"
#include "engine/layers.h"
#include "kernels/batchnorm.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"

namespace polytask::layers {

namespace {

class BatchNorm final : public Layer {
 public:
  explicit BatchNorm(BatchNormOptions o) : Layer("batch_norm"), options_(std::move(o)) {
    if (!(options_.momentum >= 0 && options_.momentum < 1) || !(options_.epsilon > 0))
      fail("batch_norm: momentum must be in [0, 1) and epsilon positive (got ",
           options_.momentum, ", ", options_.epsilon, ")");
  }

  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    if (in[0].rank() != 1 && in[0].rank() != 3)
      error(cat("expects a (features,) or (channels, height, width) input, got ", in[0]));
    const int64_t c = in[0][0];
    if (!built()) {
      add_parameter("weight", {c}, Init::Ones);
      add_parameter("bias", {c}, Init::Zeros);
      add_parameter("running_mean", {c}, Init::Zeros, 0, 0, false);
      add_parameter("running_var", {c}, Init::Ones, 0, 0, false);
    } else if (parameter(0).shape[0] != c) {
      error(cat("was built for ", parameter(0).shape[0], " channels, called on ", in[0]));
    }
    return in[0];
  }

  std::vector<AuxSpec> aux(const std::vector<Shape>& in, int64_t) const override {
    return {AuxSpec{{in[0][0]}, false, false}, AuxSpec{{in[0][0]}, false, false}};
  }

  bool has_cuda_kernels() const override { return true; }

  void forward(const LayerCall& c) override {
    const auto s = geometry(c.x[0]);
    dispatch("batch_norm forward", c.y, [&]<class T>() {
      const T* gamma = parameter(0).value.data<T>();
      const T* beta = parameter(1).value.data<T>();
      T* running_mean = parameter(2).value.data<T>();
      T* running_var = parameter(3).value.data<T>();
      if (c.training)
        kernels::cpu::batchnorm_forward_train<T>(
            s, c.x[0].data<T>(), gamma, beta, T(options_.epsilon), T(options_.momentum),
            c.y.data<T>(), c.aux[0].data<T>(), c.aux[1].data<T>(), running_mean, running_var);
      else
        kernels::cpu::batchnorm_forward_infer<T>(s, c.x[0].data<T>(), gamma, beta, running_mean,
                                                 running_var, T(options_.epsilon), c.y.data<T>());
    }, [&](auto stream) {
      const float* gamma = parameter(0).value.data<float>();
      const float* beta = parameter(1).value.data<float>();
      float* running_mean = parameter(2).value.data<float>();
      float* running_var = parameter(3).value.data<float>();
      if (c.training)
        kernels::cuda::batchnorm_forward_train(
            s, c.x[0].data<float>(), gamma, beta, float(options_.epsilon),
            float(options_.momentum), c.y.data<float>(), c.aux[0].data<float>(),
            c.aux[1].data<float>(), running_mean, running_var, cuda_reduce_partials(), stream);
      else
        kernels::cuda::batchnorm_forward_infer(s, c.x[0].data<float>(), gamma, beta, running_mean,
                                               running_var, float(options_.epsilon),
                                               c.y.data<float>(), stream);
    });
  }

  void backward(const LayerCall& c) override {
    const auto s = geometry(c.x[0]);
    dispatch("batch_norm backward", c.dy, [&]<class T>() {
      const T* x = c.x[0].data<T>();
      const T* gamma = parameter(0).value.data<T>();
      T* dgamma = parameter(0).grad.data<T>();
      T* dbeta = parameter(1).grad.data<T>();
      T* dx = c.dx[0].defined() ? c.dx[0].data<T>() : nullptr;
      // The kernel applies one mode to dx, dgamma and dbeta. When the plan asks for different
      // modes (a shared input but a single call, or the reverse), compute the parameter
      // gradients first and then dx with throw-away parameter gradients in the workspace.
      if (!dx || c.dx_mode[0] == c.param_mode) {
        kernels::cpu::batchnorm_backward<T>(s, x, c.dy.data<T>(), gamma, c.aux[0].data<T>(),
                                            c.aux[1].data<T>(), dx, dgamma, dbeta, c.param_mode);
        return;
      }
      kernels::cpu::batchnorm_backward<T>(s, x, c.dy.data<T>(), gamma, c.aux[0].data<T>(),
                                          c.aux[1].data<T>(), nullptr, dgamma, dbeta,
                                          c.param_mode);
      T* scratch = c.workspace.data<T>();
      kernels::cpu::batchnorm_backward<T>(s, x, c.dy.data<T>(), gamma, c.aux[0].data<T>(),
                                          c.aux[1].data<T>(), dx, scratch, scratch + s.c,
                                          c.dx_mode[0]);
    }, [&](auto stream) {
      // The CUDA kernel skips any null gradient, so differing modes take two calls.
      const auto run = [&](float* dx, float* dgamma, float* dbeta, GradMode mode) {
        kernels::cuda::batchnorm_backward(s, c.x[0].data<float>(), c.dy.data<float>(),
                                          parameter(0).value.data<float>(), c.aux[0].data<float>(),
                                          c.aux[1].data<float>(), dx, dgamma, dbeta, mode,
                                          cuda_reduce_partials(), stream);
      };
      float* dx = c.dx[0].defined() ? c.dx[0].data<float>() : nullptr;
      float* dgamma = parameter(0).grad.data<float>();
      float* dbeta = parameter(1).grad.data<float>();
      if (!dx || c.dx_mode[0] == c.param_mode) {
        run(dx, dgamma, dbeta, c.param_mode);
      } else {
        run(nullptr, dgamma, dbeta, c.param_mode);
        run(dx, nullptr, nullptr, c.dx_mode[0]);
      }
    });
  }

  int64_t workspace_elements(const std::vector<Shape>& in, int64_t) const override {
    return 2 * in[0][0];
  }

 private:
  static kernels::BatchNormShape geometry(const Tensor& x) {
    const int64_t n = x.dim(0), c = x.dim(1);
    return {n, c, (n > 0 && c > 0) ? x.numel() / (n * c) : 1};
  }
  BatchNormOptions options_;
};

class Dropout final : public Layer {
 public:
  explicit Dropout(double rate) : Layer("dropout"), rate_(rate) {
    if (!(rate >= 0 && rate < 1)) fail("dropout: rate must be in [0, 1), got ", rate);
  }
  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    mark_built();
    return in[0];
  }
  bool has_cuda_kernels() const override { return true; }
  void forward(const LayerCall& c) override {
    dispatch(
        "dropout forward", c.y,
        [&]<class T>() {
          if (c.training)
            kernels::cpu::dropout_forward<T>(c.y.numel(), float(rate_), c.seed, c.stream,
                                             first_index(c), c.x[0].data<T>(), c.y.data<T>());
          else
            kernels::cpu::copy<T>(c.y.numel(), c.x[0].data<T>(), c.y.data<T>());
        },
        [&](auto stream) {
          if (c.training)
            kernels::cuda::dropout_forward(c.y.numel(), float(rate_), c.seed, draw(c),
                                           first_index(c), c.x[0].data<float>(), c.y.data<float>(),
                                           stream);
          else
            kernels::cuda::copy(c.y.numel(), c.x[0].data<float>(), c.y.data<float>(), stream);
        });
  }
  void backward(const LayerCall& c) override {
    if (!c.dx[0].defined()) return;
    dispatch(
        "dropout backward", c.dy,
        [&]<class T>() {
          kernels::cpu::dropout_backward<T>(c.dy.numel(), float(rate_), c.seed, c.stream,
                                            first_index(c), c.dy.data<T>(), c.dx[0].data<T>(),
                                            c.dx_mode[0]);
        },
        [&](auto stream) {
          kernels::cuda::dropout_backward(c.dy.numel(), float(rate_), c.seed, draw(c),
                                          first_index(c), c.dy.data<float>(), c.dx[0].data<float>(),
                                          c.dx_mode[0], stream);
        });
  }

 private:
  // The call's draw, or, inside a CUDA graph, the same draw computed from the device's step.
  static kernels::cuda::PhiloxStream draw(const LayerCall& c) {
    if (!c.device_step) return c.stream;
    return {c.device_step, kStepShift, c.stream & ((uint64_t(1) << kStepShift) - 1)};
  }
  // The Philox index of y's element 0: the batch's first global row (LayerCall::first_row)
  // times the elements per row, so the mask is drawn by global element and a data-parallel
  // rank draws what one process would for its rows. Backward passes the same, so it recomputes
  // forward's mask.
  static uint64_t first_index(const LayerCall& c) {
    const int64_t rows = c.y.dim(0);
    return rows > 0 ? uint64_t(c.first_row) * uint64_t(c.y.numel() / rows) : 0;
  }
  double rate_;
};

}  // namespace

LayerRef batch_norm(BatchNormOptions options) {
  std::string name = options.name;
  auto layer = std::make_shared<BatchNorm>(std::move(options));
  if (!name.empty()) layer->set_name(std::move(name));
  return LayerRef(layer);
}

LayerRef dropout(double rate, std::string name) {
  auto layer = std::make_shared<Dropout>(rate);
  if (!name.empty()) layer->set_name(std::move(name));
  return LayerRef(layer);
}

}  // namespace polytask::layers
