// CPU reference for the losses. Forward passes reduce serially in double so that the loss is
// bit-identical for any thread count and float inputs lose nothing in the sum; they are small
// next to the network (rows × classes), so the serial loop costs nothing that matters.
#include "kernels/loss.h"
#include "kernels/cpu/parallel.h"

#include <cmath>

#include "kernels/error.h"

namespace polytask::kernels::cpu {

namespace {


// Checks every label before anything is written, so a bad batch leaves the outputs untouched
// and the message names the first offending row.
void check_labels(const char* op, int64_t rows, int64_t classes, const int32_t* labels) {
  for (int64_t i = 0; i < rows; ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      fail(op, ": row ", i, " has label ", labels[i], ", outside [0, ", classes, ")");
}

// Writes the softmax of one row into probs and returns its log-sum-exp. Subtracting the row
// maximum keeps every exponent ≤ 0, so logits of ±1000 neither overflow nor lose the
// largest term.
template <class T>
double softmax_row(int64_t classes, const T* z, T* p) {
  if (classes == 0) return 0.0;  // an empty row has nothing to normalise and adds no loss
  double max = static_cast<double>(z[0]);
  for (int64_t j = 1; j < classes; ++j)
    if (static_cast<double>(z[j]) > max) max = static_cast<double>(z[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < classes; ++j) sum += std::exp(static_cast<double>(z[j]) - max);
  for (int64_t j = 0; j < classes; ++j)
    p[j] = static_cast<T>(std::exp(static_cast<double>(z[j]) - max) / sum);
  return max + std::log(sum);
}

}  // namespace

template <class T>
void softmax_cross_entropy_forward(int64_t rows, int64_t classes, const T* logits,
                                   const int32_t* labels, T* probs, T* loss) {
  check_labels("softmax_cross_entropy", rows, classes, labels);
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    const T* z = logits + i * classes;
    // -log p[label] = lse - z[label]: never forms log(p), which underflows to -inf when a
    // logit trails the maximum by more than ~100 (float) or ~745 (double).
    const double lse = softmax_row(classes, z, probs + i * classes);
    total += lse - static_cast<double>(z[labels[i]]);
  }
  *loss = rows > 0 ? static_cast<T>(total / static_cast<double>(rows)) : T(0);
}

template <class T>
void softmax_cross_entropy_backward(int64_t rows, int64_t classes, const T* probs,
                                    const int32_t* labels, T scale, T* dlogits, GradMode mode) {
  check_labels("softmax_cross_entropy backward", rows, classes, labels);
  if (rows == 0) return;
  const double factor = static_cast<double>(scale) / static_cast<double>(rows);
  const int threads = parallel_threads(rows * classes);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < rows; ++i) {
    const T* p = probs + i * classes;
    T* dz = dlogits + i * classes;
    for (int64_t j = 0; j < classes; ++j) {
      const double onehot = j == labels[i] ? 1.0 : 0.0;
      store_grad(mode, dz[j], static_cast<T>(factor * (static_cast<double>(p[j]) - onehot)));
    }
  }
}

template <class T>
void softmax_cross_entropy_targets_forward(int64_t rows, int64_t classes, const T* logits,
                                           const T* targets, T* probs, T* loss) {
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    const T* z = logits + i * classes;
    const T* t = targets + i * classes;
    // -Σ t·log p = Σ t·(lse - z), finite even where p underflows to 0.
    const double lse = softmax_row(classes, z, probs + i * classes);
    for (int64_t j = 0; j < classes; ++j)
      total += static_cast<double>(t[j]) * (lse - static_cast<double>(z[j]));
  }
  *loss = rows > 0 ? static_cast<T>(total / static_cast<double>(rows)) : T(0);
}

template <class T>
void softmax_cross_entropy_targets_backward(int64_t rows, int64_t classes, const T* probs,
                                            const T* targets, T scale, T* dlogits, GradMode mode) {
  if (rows == 0) return;
  const double factor = static_cast<double>(scale) / static_cast<double>(rows);
  // The exact gradient of Σ t·(lse - z) is p·Σt - t; it reduces to the textbook p - t when a
  // target row sums to 1, and stays correct for rows that do not (unnormalised soft labels).
  const int threads = parallel_threads(rows * classes);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < rows; ++i) {
    const T* p = probs + i * classes;
    const T* t = targets + i * classes;
    T* dz = dlogits + i * classes;
    double target_sum = 0.0;
    for (int64_t j = 0; j < classes; ++j) target_sum += static_cast<double>(t[j]);
    for (int64_t j = 0; j < classes; ++j)
      store_grad(mode, dz[j],
                 static_cast<T>(factor * (static_cast<double>(p[j]) * target_sum -
                                          static_cast<double>(t[j]))));
  }
}

template <class T>
void binary_cross_entropy_forward(int64_t count, const T* logits, const T* targets, T* loss) {
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    const double z = static_cast<double>(logits[i]), t = static_cast<double>(targets[i]);
    // -t·log σ(z) - (1-t)·log(1-σ(z)) rearranged so no exp() of a positive number appears.
    total += std::fmax(z, 0.0) - z * t + std::log1p(std::exp(-std::fabs(z)));
  }
  *loss = count > 0 ? static_cast<T>(total / static_cast<double>(count)) : T(0);
}

template <class T>
void binary_cross_entropy_backward(int64_t count, const T* logits, const T* targets, T scale,
                                   T* dlogits, GradMode mode) {
  if (count == 0) return;
  const double factor = static_cast<double>(scale) / static_cast<double>(count);
  const int threads = parallel_threads(16 * count);  // an exp per element
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < count; ++i) {
    const double z = static_cast<double>(logits[i]);
    // Two branches so the exponent is never positive: e^z/(1+e^z) for z < 0 avoids overflow
    // of e^-z that 1/(1+e^-z) would hit at z ≈ -710.
    const double e = std::exp(-std::fabs(z));
    const double sigmoid = z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    store_grad(mode, dlogits[i],
               static_cast<T>(factor * (sigmoid - static_cast<double>(targets[i]))));
  }
}

template <class T>
void mse_forward(int64_t count, const T* pred, const T* target, T* loss) {
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    const double d = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
    total += d * d;
  }
  *loss = count > 0 ? static_cast<T>(total / static_cast<double>(count)) : T(0);
}

template <class T>
void mse_backward(int64_t count, const T* pred, const T* target, T scale, T* dpred, GradMode mode) {
  if (count == 0) return;
  const double factor = 2.0 * static_cast<double>(scale) / static_cast<double>(count);
  const int threads = parallel_threads(count);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < count; ++i)
    store_grad(
        mode, dpred[i],
        static_cast<T>(factor * (static_cast<double>(pred[i]) - static_cast<double>(target[i]))));
}

#define POLYTASK_INSTANTIATE_LOSS(T)                                                               \
  template void softmax_cross_entropy_forward<T>(int64_t, int64_t, const T*, const int32_t*, T*,   \
                                                 T*);                                              \
  template void softmax_cross_entropy_backward<T>(int64_t, int64_t, const T*, const int32_t*, T,   \
                                                  T*, GradMode);                                   \
  template void softmax_cross_entropy_targets_forward<T>(int64_t, int64_t, const T*, const T*, T*, \
                                                         T*);                                      \
  template void softmax_cross_entropy_targets_backward<T>(int64_t, int64_t, const T*, const T*, T, \
                                                          T*, GradMode);                           \
  template void binary_cross_entropy_forward<T>(int64_t, const T*, const T*, T*);                  \
  template void binary_cross_entropy_backward<T>(int64_t, const T*, const T*, T, T*, GradMode);    \
  template void mse_forward<T>(int64_t, const T*, const T*, T*);                                   \
  template void mse_backward<T>(int64_t, const T*, const T*, T, T*, GradMode);

POLYTASK_INSTANTIATE_LOSS(float)
POLYTASK_INSTANTIATE_LOSS(double)

#undef POLYTASK_INSTANTIATE_LOSS

}  // namespace polytask::kernels::cpu
