#include "engine/balancers/grad_ops.h"

#include <array>
#include <vector>

#include "engine/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/epoch_stats.h"
#include "kernels/reduce.h"

namespace polytask::balancing {

namespace {
void check_same(const char* op, const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel() || a.dtype() != b.dtype() || a.device() != b.device())
    fail(op, ": ", a.describe(), " and ", b.describe(), " differ");
}

// One device double the dot product lands in before it is read back.
double* scalar_on_device() {
  static double* const scalar = static_cast<double*>(allocate_bytes(Device::CUDA, sizeof(double)));
  return scalar;
}

#if !defined(POLYTASK_WITH_CUDA)
[[maybe_unused]] void device_weighted_sum(std::span<const double>, std::span<const Tensor>, const Tensor&,
                         kernels::cuda::Stream) {
  fail("fan-out combine: this build has no CUDA");
}
#else

// y = Σ c_t x_t in one pass (kernels::cuda::weighted_sum takes host arrays of device pointers).
void device_weighted_sum(std::span<const double> coefficients, std::span<const Tensor> xs,
                         const Tensor& out, kernels::cuda::Stream stream) {
  if (xs.size() > size_t(kernels::cuda::kMaxWeightedSumParts))
    fail("fan-out combine: ", xs.size(), " tasks; the CUDA combine takes at most ",
         kernels::cuda::kMaxWeightedSumParts);
  std::array<const float*, kernels::cuda::kMaxWeightedSumParts> sources{};
  std::array<float, kernels::cuda::kMaxWeightedSumParts> weights{};
  for (size_t t = 0; t < xs.size(); ++t) {
    sources[t] = xs[t].data<float>();
    weights[t] = float(coefficients[t]);
  }
  kernels::cuda::weighted_sum(out.numel(), int(xs.size()), sources.data(), weights.data(),
                              out.data<float>(), stream);
}
#endif
}  // namespace

double dot(const Tensor& a, const Tensor& b) {
  check_same("balancer dot", a, b);
  double sum = 0;
  dispatch(
      "balancer dot", a,
      [&]<class T>() {
        const T* x = a.data<T>();
        const T* y = b.data<T>();
        for (int64_t i = 0, n = a.numel(); i < n; ++i) sum += double(x[i]) * double(y[i]);
      },
      [&](auto stream) {
        kernels::cuda::dot(a.numel(), a.data<float>(), b.data<float>(), scalar_on_device(),
                           cuda_reduce_partials(), stream);
        copy_bytes(&sum, Device::CPU, scalar_on_device(), Device::CUDA, sizeof(double));
      });
  return sum;
}

void axpy(double alpha, const Tensor& x, const Tensor& y) {
  check_same("balancer axpy", x, y);
  dispatch(
      "balancer axpy", y,
      [&]<class T>() {
        const T* src = x.data<T>();
        T* dst = y.data<T>();
        for (int64_t i = 0, n = y.numel(); i < n; ++i)
          dst[i] = T(double(dst[i]) + alpha * double(src[i]));
      },
      [&](auto stream) {
        kernels::cuda::scale_grad(y.numel(), float(alpha), x.data<float>(), y.data<float>(),
                                  kernels::GradMode::Accumulate, stream);
      });
}

void copy(const Tensor& x, const Tensor& y) {
  check_same("balancer copy", x, y);
  dispatch(
      "balancer copy", y,
      [&]<class T>() { kernels::cpu::copy<T>(y.numel(), x.data<T>(), y.data<T>()); },
      [&](auto stream) { kernels::cuda::copy(y.numel(), x.data<float>(), y.data<float>(), stream); });
}

void weighted_sum(std::span<const double> coefficients, std::span<const Tensor> xs,
                  const Tensor& out) {
  for (const Tensor& x : xs) check_same("balancer weighted sum", x, out);
  dispatch(
      "balancer weighted sum", out,
      [&]<class T>() {
        T* dst = out.data<T>();
        const int64_t n = out.numel();
        for (size_t t = 0; t < xs.size(); ++t) {
          const T* src = xs[t].data<T>();
          const double c = coefficients[t];
          if (t == 0)
            for (int64_t i = 0; i < n; ++i) dst[i] = T(c * double(src[i]));
          else
            for (int64_t i = 0; i < n; ++i) dst[i] = T(double(dst[i]) + c * double(src[i]));
        }
      },
      [&](auto stream) { device_weighted_sum(coefficients, xs, out, stream); });
}

void plain_sum(std::span<const Tensor> xs, const Tensor& out) {
  dispatch(
      "fan-out combine", out,
      [&]<class T>() {
        for (size_t t = 0; t < xs.size(); ++t)
          kernels::cpu::scale_grad<T>(
              out.numel(), T(1), xs[t].data<T>(), out.data<T>(),
              t == 0 ? kernels::GradMode::Overwrite : kernels::GradMode::Accumulate);
      },
      [&](auto stream) {
        const std::vector<double> ones(xs.size(), 1.0);
        device_weighted_sum(ones, xs, out, stream);
      });
}

void weighted_sum_device_coefficients(const Tensor& coefficients, std::span<const Tensor> xs,
                                      const Tensor& out) {
#if defined(POLYTASK_WITH_CUDA)
  if (xs.size() > size_t(kernels::cuda::kMaxWeightedSumParts))
    fail("fan-out combine: ", xs.size(), " tasks; the CUDA combine takes at most ",
         kernels::cuda::kMaxWeightedSumParts);
  std::array<const float*, kernels::cuda::kMaxWeightedSumParts> sources{};
  for (size_t t = 0; t < xs.size(); ++t) {
    check_same("balancer weighted sum", xs[t], out);
    sources[t] = xs[t].data<float>();
  }
  kernels::cuda::weighted_sum_device_coefficients(out.numel(), int(xs.size()), sources.data(),
                                                  coefficients.data<float>(), out.data<float>(),
                                                  cuda_stream());
#else
  (void)coefficients, (void)xs, (void)out;
  fail("fan-out combine on the GPU: this build has no CUDA");
#endif
}

void device_gram(std::span<const Tensor> xs, const Tensor& gram) {
#if defined(POLYTASK_WITH_CUDA)
  const size_t tasks = xs.size();
  double* g = gram.data<double>();
  for (size_t i = 0; i < tasks; ++i)
    for (size_t j = i; j < tasks; ++j)
      kernels::cuda::dot(xs[i].numel(), xs[i].data<float>(), xs[j].data<float>(), g + i * tasks + j,
                         cuda_reduce_partials(), cuda_stream());
#else
  (void)xs, (void)gram;
  fail("gradient statistics on the GPU: this build has no CUDA");
#endif
}

void device_add_gram_statistics(int tasks, const Tensor& gram, const Tensor& sums) {
#if defined(POLYTASK_WITH_CUDA)
  kernels::cuda::add_gram_statistics(tasks, gram.data<double>(), sums.data<double>(),
                                     cuda_stream());
#else
  (void)tasks, (void)gram, (void)sums;
  fail("gradient statistics on the GPU: this build has no CUDA");
#endif
}

}  // namespace polytask::balancing
