#include "engine/optimizer.h"

#include <cmath>

#include "engine/dispatch.h"

namespace polytask {

namespace {
void check_lr(double lr) {
  if (!(lr > 0) || !std::isfinite(lr)) fail("learning rate must be positive and finite, got ", lr);
}
void ensure_state(Tensor& t, const ParameterSet& params) {
  if (!t.defined() || t.numel() != params.trainable_count)
    t = Tensor::zeros({params.trainable_count}, params.values.dtype(), params.values.device());
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
  dispatch_cpu_float("adam", params.values, [&]<class T>() {
    kernels::cpu::adam_update<T>(params.trainable_count, params_, params.values.data<T>(),
                                 params.grads.data<T>(), m_.data<T>(), v_.data<T>());
  });
  ++params_.step;
}

std::vector<std::pair<std::string, Tensor>> Adam::state() {
  if (!step_.defined()) step_ = Tensor::zeros({1}, DType::F64);
  step_.data<double>()[0] = double(params_.step);
  return {{"adam.m", m_}, {"adam.v", v_}, {"adam.step", step_}};
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
  dispatch_cpu_float("sgd", params.values, [&]<class T>() {
    kernels::cpu::sgd_update<T>(params.trainable_count, params_, params.values.data<T>(),
                                params.grads.data<T>(), velocity_.data<T>());
  });
}

std::vector<std::pair<std::string, Tensor>> Sgd::state() { return {{"sgd.velocity", velocity_}}; }

}  // namespace polytask
