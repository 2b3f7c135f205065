#include "kernels/gather.h"

#include <cstring>

namespace polytask::kernels::cpu {

template <class T>
void gather_rows(int64_t n, int64_t row_elements, const int32_t* indices, const T* src, T* dst) {
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(dst + r * row_elements, src + int64_t(indices[r]) * row_elements,
                size_t(row_elements) * sizeof(T));
}

void gather_rows_normalized(int64_t n, int64_t row_elements, const int32_t* indices,
                            const uint8_t* src, float divisor, float* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* from = src + int64_t(indices[r]) * row_elements;
    float* to = dst + r * row_elements;
    for (int64_t e = 0; e < row_elements; ++e) to[e] = float(from[e]) / divisor;
  }
}

template void gather_rows<float>(int64_t, int64_t, const int32_t*, const float*, float*);
template void gather_rows<int32_t>(int64_t, int64_t, const int32_t*, const int32_t*, int32_t*);

}  // namespace polytask::kernels::cpu
