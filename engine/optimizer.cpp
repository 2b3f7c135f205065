#include "engine/optimizer.h"

#include <cmath>

#include "engine/dispatch.h"
#include "engine/host_staging.h"

namespace polytask {

namespace {
void check_lr(double lr) {
  if (!(lr > 0) || !std::isfinite(lr)) fail("learning rate must be positive and finite, got ", lr);
}
void ensure_state(Tensor& t, const ParameterSet& params) {
  if (!t.defined() || t.numel() != params.trainable_count)
    t = Tensor::zeros({params.trainable_count}, params.values.dtype(), params.values.device());
}
// A saved per-parameter state tensor, checked against `params` and converted to their dtype
// and device.
Tensor restore_flat(const std::string& name, const Tensor& saved, const ParameterSet& params) {
  const int64_t count = params.trainable_count;
  if (saved.numel() != count)
    fail("optimizer state '", name, "' has ", saved.numel(), " elements but the network has ",
         count, " trainable parameters");
  if (saved.dtype() == DType::I32)
    fail("optimizer state '", name, "' is ", saved.describe(), ", not floating point");
  Tensor host = saved.to(Device::CPU).view({count});
  const DType dtype = params.values.dtype();
  if (host.dtype() != dtype) {
    Tensor converted = Tensor::empty({count}, dtype);
    if (dtype == DType::F32) {
      const double* src = host.data<double>();
      float* dst = converted.data<float>();
      for (int64_t i = 0; i < count; ++i) dst[i] = float(src[i]);
    } else {
      const float* src = host.data<float>();
      double* dst = converted.data<double>();
      for (int64_t i = 0; i < count; ++i) dst[i] = double(src[i]);
    }
    host = converted;
  }
  Tensor out = Tensor::empty({count}, dtype, params.values.device());
  out.copy_from(host);
  return out;
}
}  // namespace

void Optimizer::load_state(const std::vector<std::pair<std::string, Tensor>>& state,
                           const ParameterSet&) {
  if (!state.empty())
    fail(name(), ": cannot restore optimizer state such as '", state[0].first, "'");
}

void Optimizer::stage(ParameterSet&) {
  fail(name(), ": this optimiser cannot run inside a CUDA graph");
}
void Optimizer::step_staged(ParameterSet&) {
  fail(name(), ": this optimiser cannot run inside a CUDA graph");
}

namespace {
// Copies a constants struct to a device buffer (allocated on first use) without waiting,
// through the pinned staging ring.
template <class Constants>
void stage_constants(const Constants& c, Tensor& staged, const char* what) {
  static_assert(sizeof(Constants) % sizeof(float) == 0);
  const int64_t floats = int64_t(sizeof(Constants) / sizeof(float));
  if (!staged.defined()) staged = Tensor::empty({floats}, DType::F32, Device::CUDA);
  host_staging().upload(staged.raw(), &c, sizeof(Constants), what);
}
void require_cuda(const char* op, const ParameterSet& params) {
  if (params.values.device() != Device::CUDA || params.values.dtype() != DType::F32)
    fail(op, ": staged updates are for f32 parameters on the GPU, got ", params.values.describe());
}
}  // namespace

Adam::Adam(kernels::AdamParams params) : params_(params) {
  check_lr(params_.lr);
  if (!(params_.beta1 >= 0 && params_.beta1 < 1) || !(params_.beta2 >= 0 && params_.beta2 < 1) ||
      !(params_.eps > 0) || !(params_.weight_decay >= 0))
    fail("adam: betas must be in [0, 1), eps positive and weight decay non-negative");
  params_.step = 1;
}

void Adam::set_learning_rate(double lr) {
  check_lr(lr);
  params_.lr = float(lr);
}

void Adam::step(ParameterSet& params) {
  ensure_state(m_, params);
  ensure_state(v_, params);
  dispatch(
      "adam", params.values,
      [&]<class T>() {
        kernels::cpu::adam_update<T>(params.trainable_count, params_, params.values.data<T>(),
                                     params.grads.data<T>(), m_.data<T>(), v_.data<T>());
      },
      [&](auto stream) {
        kernels::cuda::adam_update(params.trainable_count, params_, params.values.data<float>(),
                                   params.grads.data<float>(), m_.data<float>(), v_.data<float>(),
                                   stream);
      });
  ++params_.step;
}

void Adam::stage(ParameterSet& params) {
  require_cuda("adam", params);
  ensure_state(m_, params);
  ensure_state(v_, params);
#if defined(POLYTASK_WITH_CUDA)
  stage_constants(kernels::cuda::adam_step_constants(params_), staged_, "adam's step constants");
#endif
  ++params_.step;
}

void Adam::step_staged(ParameterSet& params) {
  require_cuda("adam", params);
  if (!staged_.defined()) fail("adam: step_staged before stage");
#if defined(POLYTASK_WITH_CUDA)
  kernels::cuda::adam_update(
      params.trainable_count, params_, params.values.data<float>(), params.grads.data<float>(),
      m_.data<float>(), v_.data<float>(), cuda_stream(),
      reinterpret_cast<const kernels::cuda::AdamStepConstants*>(staged_.raw()));
#endif
}

std::vector<std::pair<std::string, Tensor>> Adam::state() {
  if (!step_.defined()) step_ = Tensor::zeros({1}, DType::F64);
  step_.data<double>()[0] = double(params_.step);
  return {{"adam.m", m_}, {"adam.v", v_}, {"adam.step", step_}};
}

void Adam::load_state(const std::vector<std::pair<std::string, Tensor>>& state,
                      const ParameterSet& params) {
  Tensor m, v;
  double step = -1;
  for (const auto& [name, t] : state) {
    if (name == "adam.m") {
      m = restore_flat(name, t, params);
    } else if (name == "adam.v") {
      v = restore_flat(name, t, params);
    } else if (name == "adam.step") {
      if (t.numel() != 1) fail("adam: state 'adam.step' must hold one number, got ", t.describe());
      step = t.to(Device::CPU).item(0);
    } else {
      fail("adam: unexpected optimizer state '", name, "' (adam keeps adam.m, adam.v, adam.step)");
    }
  }
  if (step < 0) fail("adam: the optimizer state lacks 'adam.step'");
  if (!(step >= 1 && step <= 9007199254740992.0 && step == std::floor(step)))
    fail("adam: invalid step count ", step, " in 'adam.step'");
  if (m.defined() != v.defined())
    fail("adam: the optimizer state has only one of adam.m and adam.v");
  if (!m.defined() && step != 1)
    fail("adam: the optimizer state is at step ", step, " but lacks the moments adam.m and adam.v");
  m_ = m;
  v_ = v;
  params_.step = int64_t(step);
}

Sgd::Sgd(kernels::SgdParams params) : params_(params) {
  check_lr(params_.lr);
  if (!(params_.momentum >= 0) || !(params_.weight_decay >= 0))
    fail("sgd: momentum and weight decay must be non-negative");
}

void Sgd::set_learning_rate(double lr) {
  check_lr(lr);
  params_.lr = float(lr);
}

void Sgd::step(ParameterSet& params) {
  ensure_state(velocity_, params);
  dispatch(
      "sgd", params.values,
      [&]<class T>() {
        kernels::cpu::sgd_update<T>(params.trainable_count, params_, params.values.data<T>(),
                                    params.grads.data<T>(), velocity_.data<T>());
      },
      [&](auto stream) {
        kernels::cuda::sgd_update(params.trainable_count, params_, params.values.data<float>(),
                                  params.grads.data<float>(), velocity_.data<float>(), stream);
      });
}

void Sgd::stage(ParameterSet& params) {
  require_cuda("sgd", params);
  ensure_state(velocity_, params);
#if defined(POLYTASK_WITH_CUDA)
  stage_constants(kernels::cuda::sgd_step_constants(params_), staged_, "sgd's step constants");
#endif
}

void Sgd::step_staged(ParameterSet& params) {
  require_cuda("sgd", params);
  if (!staged_.defined()) fail("sgd: step_staged before stage");
#if defined(POLYTASK_WITH_CUDA)
  kernels::cuda::sgd_update(
      params.trainable_count, params_, params.values.data<float>(), params.grads.data<float>(),
      velocity_.data<float>(), cuda_stream(),
      reinterpret_cast<const kernels::cuda::SgdStepConstants*>(staged_.raw()));
#endif
}

std::vector<std::pair<std::string, Tensor>> Sgd::state() { return {{"sgd.velocity", velocity_}}; }

void Sgd::load_state(const std::vector<std::pair<std::string, Tensor>>& state,
                     const ParameterSet& params) {
  Tensor velocity;
  for (const auto& [name, t] : state) {
    if (name != "sgd.velocity")
      fail("sgd: unexpected optimizer state '", name, "' (sgd keeps sgd.velocity)");
    velocity = restore_flat(name, t, params);
  }
  velocity_ = velocity;
}

}  // namespace polytask
