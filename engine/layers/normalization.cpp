// BatchNorm (per channel of (C, H, W) samples, per feature of (F,) samples; synchronised over
// the ranks of a data-parallel run when asked) and Dropout.
#include <cstdint>
#include <string>

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
    if (c.training && synchronised(c)) return forward_synchronised(c, s);
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
    if (synchronised(c)) return backward_synchronised(c, s);
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

  // 2·C elements of scratch gradients (backward with differing modes), or the synchronised
  // passes' 2·C doubles (4·C floats).
  int64_t workspace_elements(const std::vector<Shape>& in, int64_t) const override {
    return 4 * in[0][0];
  }

 private:
  // ---- synchronised BatchNorm (LayerCall::sync_batchnorm; kernels/batchnorm.h) ----
  //
  // Each pass computes this rank's per-channel sums, adds them up over the ranks with one
  // allreduce of 2·C doubles, and applies the global ones. The forward's sums are shifted by the
  // running mean, which every rank holds bit for bit: the one shift that needs no exchange (why,
  // and what it costs when the running mean is far off the batch mean: kernels/batchnorm.h).
  // Every rank calls the same collectives in the same order whatever its share of the rows, an
  // empty one included: forward one, backward one when the input needs a gradient (a property
  // of the graph, the same on every rank). dgamma and dbeta stay this rank's own sums; the
  // trainer adds the parameter gradients up over the ranks afterwards.
  static bool synchronised(const LayerCall& c) {
    return c.sync_batchnorm != nullptr && c.sync_batchnorm->size() > 1;
  }

  // The channel count over every rank (global rows · spatial), after checking the call.
  int64_t global_count(const LayerCall& c, const kernels::BatchNormShape& s) const {
    if (c.global_rows < s.n)
      error(cat("synchronised over ", c.sync_batchnorm->size(), " ranks with global_rows ",
                c.global_rows, ", fewer than this rank's ", s.n, " rows"));
    return c.global_rows * s.spatial;
  }

  // The sums' 2·C doubles, at the start of the workspace (a whole allocation, so aligned).
  double* sums_buffer(const LayerCall& c, const kernels::BatchNormShape& s) const {
    if (c.workspace.bytes() < size_t(2 * s.c) * sizeof(double) ||
        reinterpret_cast<uintptr_t>(c.workspace.raw()) % alignof(double) != 0)
      error(cat("the synchronised statistics need ", 2 * s.c, " aligned doubles of workspace, got ",
                c.workspace.describe()));
    return static_cast<double*>(c.workspace.raw());
  }

  void forward_synchronised(const LayerCall& c, const kernels::BatchNormShape& s) {
    Communicator& comm = *c.sync_batchnorm;
    const int64_t count = global_count(c, s);
    double* sums = sums_buffer(c, s);
    const char* what = collective_names().statistics.c_str();
    dispatch(
        "batch_norm forward", c.y,
        [&]<class T>() {
          T* running_mean = parameter(2).value.data<T>();
          kernels::cpu::batchnorm_sync_forward_sums<T>(s, c.x[0].data<T>(), running_mean, sums);
          comm.allreduce_sum(sums, size_t(2 * s.c), what);
          kernels::cpu::batchnorm_sync_forward_apply<T>(
              s, count, c.x[0].data<T>(), parameter(0).value.data<T>(),
              parameter(1).value.data<T>(), T(options_.epsilon), T(options_.momentum), sums,
              c.y.data<T>(), c.aux[0].data<T>(), c.aux[1].data<T>(), running_mean,
              parameter(3).value.data<T>());
        },
        [&](auto stream) {
          float* running_mean = parameter(2).value.data<float>();
          kernels::cuda::batchnorm_sync_forward_sums(s, c.x[0].data<float>(), running_mean, sums,
                                                     cuda_reduce_partials(), stream);
          comm.allreduce_sum_device(sums, size_t(2 * s.c), what);
          kernels::cuda::batchnorm_sync_forward_apply(
              s, count, c.x[0].data<float>(), parameter(0).value.data<float>(),
              parameter(1).value.data<float>(), float(options_.epsilon), float(options_.momentum),
              sums, c.y.data<float>(), c.aux[0].data<float>(), c.aux[1].data<float>(), running_mean,
              parameter(3).value.data<float>(), stream);
        });
  }

  void backward_synchronised(const LayerCall& c, const kernels::BatchNormShape& s) {
    Communicator& comm = *c.sync_batchnorm;
    const int64_t count = global_count(c, s);
    double* sums = sums_buffer(c, s);
    const char* what = collective_names().gradients.c_str();
    const bool want_dx = c.dx[0].defined();
    dispatch(
        "batch_norm backward", c.dy,
        [&]<class T>() {
          const T* x = c.x[0].data<T>();
          const T* dy = c.dy.data<T>();
          const T* save_mean = c.aux[0].data<T>();
          const T* save_invstd = c.aux[1].data<T>();
          kernels::cpu::batchnorm_sync_backward_sums<T>(s, x, dy, save_mean, save_invstd, sums,
                                                        parameter(0).grad.data<T>(),
                                                        parameter(1).grad.data<T>(), c.param_mode);
          if (!want_dx) return;
          comm.allreduce_sum(sums, size_t(2 * s.c), what);
          kernels::cpu::batchnorm_sync_backward_dx<T>(s, count, x, dy, parameter(0).value.data<T>(),
                                                      save_mean, save_invstd, sums,
                                                      c.dx[0].data<T>(), c.dx_mode[0]);
        },
        [&](auto stream) {
          const float* x = c.x[0].data<float>();
          const float* dy = c.dy.data<float>();
          const float* save_mean = c.aux[0].data<float>();
          const float* save_invstd = c.aux[1].data<float>();
          kernels::cuda::batchnorm_sync_backward_sums(
              s, x, dy, save_mean, save_invstd, sums, parameter(0).grad.data<float>(),
              parameter(1).grad.data<float>(), c.param_mode, cuda_reduce_partials(), stream);
          if (!want_dx) return;
          comm.allreduce_sum_device(sums, size_t(2 * s.c), what);
          kernels::cuda::batchnorm_sync_backward_dx(
              s, count, x, dy, parameter(0).value.data<float>(), save_mean, save_invstd, sums,
              c.dx[0].data<float>(), c.dx_mode[0], stream);
        });
  }

  static kernels::BatchNormShape geometry(const Tensor& x) {
    const int64_t n = x.dim(0), c = x.dim(1);
    return {n, c, (n > 0 && c > 0) ? x.numel() / (n * c) : 1};
  }
  // What the synchronised passes' collectives are called in a timeout message; built on first
  // use (the layer's name is final by then), so that a step allocates nothing.
  struct CollectiveNames {
    std::string statistics, gradients;
  };
  const CollectiveNames& collective_names() {
    if (collective_names_.statistics.empty())
      collective_names_ = {"the BatchNorm statistics of " + name(),
                           "the BatchNorm gradient sums of " + name()};
    return collective_names_;
  }

  BatchNormOptions options_;
  CollectiveNames collective_names_;
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
