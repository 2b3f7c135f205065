#include "kernels/soft_sharing.h"

#include "kernels/error.h"

namespace polytask::kernels::cpu {

template <class T>
void soft_sharing_gradient(int64_t count, int members, const T* const* values, T* const* grads,
                           T strength) {
  if (members < 1 || members > kMaxSoftSharedCopies)
    fail("soft sharing: ", members, " copies; 1 to ", kMaxSoftSharedCopies, " are supported");
  for (int64_t e = 0; e < count; ++e) {
    T sum = 0;
    for (int j = 0; j < members; ++j) sum += values[j][e];
    for (int i = 0; i < members; ++i)
      grads[i][e] += strength * (T(members) * values[i][e] - sum);
  }
}

template <class T>
double soft_sharing_penalty(int64_t count, int members, const T* const* values, double strength) {
  double total = 0;
  for (int i = 0; i < members; ++i)
    for (int j = i + 1; j < members; ++j)
      for (int64_t e = 0; e < count; ++e) {
        const double d = double(values[i][e]) - double(values[j][e]);
        total += d * d;
      }
  return 0.5 * strength * total;
}

template void soft_sharing_gradient<float>(int64_t, int, const float* const*, float* const*, float);
template void soft_sharing_gradient<double>(int64_t, int, const double* const*, double* const*,
                                            double);
template double soft_sharing_penalty<float>(int64_t, int, const float* const*, double);
template double soft_sharing_penalty<double>(int64_t, int, const double* const*, double);

}  // namespace polytask::kernels::cpu
