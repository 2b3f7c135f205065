#include "engine/balancers/grad_ops.h"

#include "engine/dispatch.h"
#include "kernels/elementwise.h"

namespace polytask::balancing {

namespace {
void check_same(const char* op, const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel() || a.dtype() != b.dtype())
    fail(op, ": ", a.describe(), " and ", b.describe(), " differ");
}
}  // namespace

double dot(const Tensor& a, const Tensor& b) {
  check_same("balancer dot", a, b);
  double sum = 0;
  dispatch_cpu_float("balancer dot", a, [&]<class T>() {
    const T* x = a.data<T>();
    const T* y = b.data<T>();
    for (int64_t i = 0, n = a.numel(); i < n; ++i) sum += double(x[i]) * double(y[i]);
  });
  return sum;
}

void axpy(double alpha, const Tensor& x, const Tensor& y) {
  check_same("balancer axpy", x, y);
  dispatch_cpu_float("balancer axpy", y, [&]<class T>() {
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    for (int64_t i = 0, n = y.numel(); i < n; ++i)
      dst[i] = T(double(dst[i]) + alpha * double(src[i]));
  });
}

void copy(const Tensor& x, const Tensor& y) {
  check_same("balancer copy", x, y);
  dispatch_cpu_float("balancer copy", y, [&]<class T>() {
    kernels::cpu::copy<T>(y.numel(), x.data<T>(), y.data<T>());
  });
}

void weighted_sum(std::span<const double> coefficients, std::span<const Tensor> xs,
                  const Tensor& out) {
  for (const Tensor& x : xs) check_same("balancer weighted sum", x, out);
  dispatch_cpu_float("balancer weighted sum", out, [&]<class T>() {
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
  });
}

void plain_sum(std::span<const Tensor> xs, const Tensor& out) {
  dispatch_cpu_float("fan-out combine", out, [&]<class T>() {
    for (size_t t = 0; t < xs.size(); ++t)
      kernels::cpu::scale_grad<T>(
          out.numel(), T(1), xs[t].data<T>(), out.data<T>(),
          t == 0 ? kernels::GradMode::Overwrite : kernels::GradMode::Accumulate);
  });
}

}  // namespace polytask::balancing
