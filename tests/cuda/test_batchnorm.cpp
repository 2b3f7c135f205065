// CUDA batch normalisation (kernels/cuda/batchnorm.cu) against the CPU reference: odd shapes on
// both paths (one block per channel; several blocks per channel through the partials), dense
// features (spatial = 1), a single element per channel, a constant channel, inputs whose mean
// is far from zero, the workload shapes, NaN-poisoned outputs, Overwrite and Accumulate over
// pre-seeded gradients, null gradients, y aliasing x, an empty batch, bit-identical repeats
// with a poisoned workspace, and (on a GPU with cuDNN) cuDNN as a second oracle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/batchnorm.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"
#if !defined(POLYTASK_CUDA_EMULATION) && defined(POLYTASK_WITH_CUDNN)
#include "kernels/vendor/cudnn_ops.h"
#endif

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::all_close;
using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

int64_t count(const BatchNormShape& s) { return s.n * s.c * s.spatial; }

std::string describe(const BatchNormShape& s) {
  std::ostringstream out;  // (GCC 12 raises a false -Wrestrict on "(" + std::string at -O3)
  out << "(" << s.n << ", " << s.c << ", " << s.spatial << ")";
  return out.str();
}

constexpr float kEps = 1e-3f, kMomentum = 0.99f;

// ---- tolerances ---------------------------------------------------------------------------------
//
// Both sides evaluate every statistic and every per-element formula in double and round to float
// once. The doubles differ only by summation order and nvcc's fused multiply-adds, ~1e-15
// relative, so the floats are equal or one ulp apart (2^-23 ≈ 1.2e-7 relative); 2.4e-7 leaves
// a factor 2. An indexing or statistics bug moves results by far more (a wrong channel by O(1),
// a lost partial by ≥ 1/stat-blocks of a sum).
constexpr double kRelTol = 2.4e-7;
// Where a result is a difference that cancels towards zero (y near beta, dx near 0, a mean
// near 0), the doubles' ~1e-15 relative disagreement is absolute in the cancelling terms, whose
// magnitudes here are ≤ ~1e5 (|x| with the offset inputs; m·|dy|·|γ·invstd|/m): 1e-9
// absolute covers it.
constexpr double kAbsTol = 1e-9;
// Parameter gradients are sums over m = N·spatial elements of terms ≤ ~10 in magnitude, summed
// in double in different orders: they disagree by ≤ ~m·10·2^-53 absolute before rounding.
double parameter_abs_tol(const BatchNormShape& s) {
  return 1e-14 * static_cast<double>(s.n * s.spatial) + kAbsTol;
}
// With Accumulate both sides round seed + g, which may differ by an ulp of the larger operand.
double accumulate_abs_tol(const std::vector<float>& seed, const std::vector<float>& grad) {
  double largest = 0.0;
  for (float v : seed) largest = std::max(largest, std::fabs(static_cast<double>(v)));
  for (float v : grad) largest = std::max(largest, std::fabs(static_cast<double>(v)));
  return 2.4e-7 * largest;
}

// ---- shapes and data ----------------------------------------------------------------------------

// One block per channel (≤ 4096 elements per channel), several (> 4096, up to what the partials
// hold), spatial = 1, a single element per channel (var 0), one channel.
std::vector<BatchNormShape> odd_shapes() {
  return {{3, 5, 121}, {7, 3, 1},   {1, 4, 1},   {2, 3, 37},  {3, 1, 5},
          {5, 2, 1000}, {16, 3, 289}, {1, 1, 4097}, {33, 7, 200}, {4099, 2, 1}};
}

// The workloads: after conv1 (32 channels, 26x26), conv2 (64, 11x11), a 32x32 conv trunk, and a
// dense layer of 128 features. Batch 1024 / 128 on a GPU; small batches in emulation and under
// POLYTASK_TEST_SMALL (the emulator pays ~1 µs per thread at every barrier), still on both paths.
std::vector<BatchNormShape> workload_shapes() {
  if (polytask::testing::small_shapes()) return {{8, 32, 676}, {4, 64, 121}, {2, 32, 1024}, {128, 128, 1}};
  return {{128, 32, 676}, {128, 64, 121}, {1024, 32, 1024}, {128, 128, 1}};
}

enum class Inputs { Centered, Offset };

// Centered: channel c ~ U(-2, 2)·(1 + c/4) + c/2. Offset: 1e5 + U(-1, 1), where the one-pass
// E[x²] - E[x]² loses ~log10(mean²/var) ≈ 10.5 digits (all of float's, and enough of double's to
// miss the tolerance). Channel 0 of Offset inputs is constant.
std::vector<float> make_x(const BatchNormShape& s, Inputs kind, uint64_t seed) {
  std::vector<float> x = random_vector<float>(sz(count(s)), seed, -1.0, 1.0);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t j = 0; j < s.spatial; ++j) {
        float& v = x[sz((i * s.c + c) * s.spatial + j)];
        const float fc = static_cast<float>(c);
        if (kind == Inputs::Centered)
          v = 2.0f * v * (1.0f + fc / 4.0f) + fc / 2.0f;
        else
          v = c == 0 ? 99999.5f : 1e5f + v;
      }
  return x;
}

struct Params {
  std::vector<float> gamma, beta, running_mean, running_var;
};
Params make_params(int64_t channels, uint64_t seed) {
  return {random_vector<float>(sz(channels), seed, 0.5, 1.5),
          random_vector<float>(sz(channels), seed + 1, -0.5, 0.5),
          random_vector<float>(sz(channels), seed + 2, -0.1, 0.1),
          random_vector<float>(sz(channels), seed + 3, 0.5, 1.5)};
}

struct TrainResult {
  std::vector<float> y, save_mean, save_invstd, running_mean, running_var;
};

TrainResult cpu_train(const BatchNormShape& s, const std::vector<float>& x, const Params& p) {
  TrainResult r{std::vector<float>(x.size()), std::vector<float>(sz(s.c)),
                std::vector<float>(sz(s.c)), p.running_mean, p.running_var};
  cpu::batchnorm_forward_train<float>(s, x.data(), p.gamma.data(), p.beta.data(), kEps, kMomentum,
                                      r.y.data(), r.save_mean.data(), r.save_invstd.data(),
                                      r.running_mean.data(), r.running_var.data());
  return r;
}

// Outputs start NaN-poisoned, the partials too (their contents must not matter).
TrainResult cuda_train(const BatchNormShape& s, const std::vector<float>& x, const Params& p,
                       bool in_place = false) {
  DeviceArray<float> d_x(x), d_y(x.size()), gamma(p.gamma), beta(p.beta);
  DeviceArray<float> save_mean(sz(s.c)), save_invstd(sz(s.c));
  DeviceArray<float> running_mean(p.running_mean), running_var(p.running_var);
  DeviceArray<double> partials(sz(kReduceWorkspace));
  float* y = in_place ? d_x.get() : d_y.get();
  batchnorm_forward_train(s, d_x.get(), gamma.get(), beta.get(), kEps, kMomentum, y,
                          save_mean.get(), save_invstd.get(), running_mean.get(),
                          running_var.get(), partials.get(), test_stream());
  return {in_place ? d_x.download() : d_y.download(), save_mean.download(), save_invstd.download(),
          running_mean.download(), running_var.download()};
}

void expect_train_matches(const TrainResult& got,
                          const TrainResult& expected, const std::string& what) {
  EXPECT_TRUE(all_close(got.y, expected.y, kRelTol, kAbsTol)) << what << " y";
  EXPECT_TRUE(all_close(got.save_mean, expected.save_mean, kRelTol, kAbsTol)) << what << " mean";
  EXPECT_TRUE(all_close(got.save_invstd, expected.save_invstd, kRelTol, 0.0)) << what << " invstd";
  EXPECT_TRUE(all_close(got.running_mean, expected.running_mean, kRelTol, kAbsTol))
      << what << " running_mean";
  EXPECT_TRUE(all_close(got.running_var, expected.running_var, kRelTol, kAbsTol))
      << what << " running_var";
}

// ---- forward --------------------------------------------------------------------------------------

TEST(CudaBatchNorm, ForwardTrainMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const BatchNormShape& s : odd_shapes())
    for (Inputs kind : {Inputs::Centered, Inputs::Offset}) {
      const std::vector<float> x = make_x(s, kind, seed += 5);
      const Params p = make_params(s.c, seed + 1);
      expect_train_matches(cuda_train(s, x, p), cpu_train(s, x, p),
                           describe(s) + (kind == Inputs::Offset ? " offset" : ""));
    }
}

TEST(CudaBatchNorm, ForwardTrainWorkloadShapesMatchCpu) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 200;
  for (const BatchNormShape& s : workload_shapes()) {
    const std::vector<float> x = make_x(s, Inputs::Centered, seed += 5);
    const Params p = make_params(s.c, seed + 1);
    expect_train_matches(cuda_train(s, x, p), cpu_train(s, x, p), describe(s));
  }
}

TEST(CudaBatchNorm, ForwardTrainInPlaceMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (const BatchNormShape& s : {BatchNormShape{3, 5, 121}, BatchNormShape{16, 3, 289}}) {
    const std::vector<float> x = make_x(s, Inputs::Offset, 250);
    const Params p = make_params(s.c, 251);
    expect_train_matches(cuda_train(s, x, p, true), cpu_train(s, x, p),
                         describe(s) + " in place");
  }
}

TEST(CudaBatchNorm, ForwardInferMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  std::vector<BatchNormShape> shapes = odd_shapes();
  for (const BatchNormShape& s : workload_shapes()) shapes.push_back(s);
  uint64_t seed = 300;
  for (const BatchNormShape& s : shapes) {
    const std::vector<float> x = make_x(s, Inputs::Centered, seed += 5);
    const Params p = make_params(s.c, seed + 1);
    std::vector<float> expected(x.size());
    cpu::batchnorm_forward_infer<float>(s, x.data(), p.gamma.data(), p.beta.data(),
                                        p.running_mean.data(), p.running_var.data(), kEps,
                                        expected.data());
    DeviceArray<float> d_x(x), d_y(x.size()), gamma(p.gamma), beta(p.beta);
    DeviceArray<float> running_mean(p.running_mean), running_var(p.running_var);
    batchnorm_forward_infer(s, d_x.get(), gamma.get(), beta.get(), running_mean.get(),
                            running_var.get(), kEps, d_y.get(), test_stream());
    EXPECT_TRUE(all_close(d_y.download(), expected, kRelTol, kAbsTol)) << describe(s);
  }
}

TEST(CudaBatchNorm, EmptyBatchLeavesForwardOutputsUntouched) {
  POLYTASK_REQUIRE_GPU();
  const BatchNormShape s{0, 4, 9};
  const Params p = make_params(s.c, 350);
  DeviceArray<float> x(1), y(1), gamma(p.gamma), beta(p.beta), save_mean(p.beta),
      save_invstd(p.beta), running_mean(p.running_mean), running_var(p.running_var);
  DeviceArray<double> partials(sz(kReduceWorkspace));
  batchnorm_forward_train(s, x.get(), gamma.get(), beta.get(), kEps, kMomentum, y.get(),
                          save_mean.get(), save_invstd.get(), running_mean.get(),
                          running_var.get(), partials.get(), test_stream());
  EXPECT_EQ(running_mean.download(), p.running_mean);
  EXPECT_EQ(running_var.download(), p.running_var);
  EXPECT_EQ(save_mean.download(), p.beta);
}

// ---- backward -------------------------------------------------------------------------------------

struct BackwardCase {
  std::vector<float> x, dy, gamma, save_mean, save_invstd;
};

// The forward statistics come from the CPU, so both sides differentiate at the same point.
BackwardCase make_backward_case(const BatchNormShape& s, Inputs kind, uint64_t seed) {
  BackwardCase c;
  c.x = make_x(s, kind, seed);
  const Params p = make_params(s.c, seed + 1);
  const TrainResult f = cpu_train(s, c.x, p);
  c.dy = random_vector<float>(c.x.size(), seed + 2);
  c.gamma = p.gamma;
  c.save_mean = f.save_mean;
  c.save_invstd = f.save_invstd;
  return c;
}

struct Grads {
  std::vector<float> dx, dgamma, dbeta;
};

Grads cuda_backward(const BatchNormShape& s, const BackwardCase& c, GradMode mode,
                    const Grads& seed, bool want_dx = true, bool want_params = true) {
  DeviceArray<float> x(c.x), dy(c.dy), gamma(c.gamma), save_mean(c.save_mean),
      save_invstd(c.save_invstd);
  DeviceArray<float> dx(c.x.size()), dgamma(sz(s.c)), dbeta(sz(s.c));
  DeviceArray<double> partials(sz(kReduceWorkspace));
  if (mode == GradMode::Accumulate) {
    dx.upload(seed.dx);
    dgamma.upload(seed.dgamma);
    dbeta.upload(seed.dbeta);
  }
  batchnorm_backward(s, x.get(), dy.get(), gamma.get(), save_mean.get(), save_invstd.get(),
                     want_dx ? dx.get() : nullptr, want_params ? dgamma.get() : nullptr,
                     want_params ? dbeta.get() : nullptr, mode, partials.get(), test_stream());
  return {dx.download(), dgamma.download(), dbeta.download()};
}

Grads cpu_backward(const BatchNormShape& s, const BackwardCase& c, GradMode mode, Grads g) {
  cpu::batchnorm_backward<float>(s, c.x.data(), c.dy.data(), c.gamma.data(), c.save_mean.data(),
                                 c.save_invstd.data(), g.dx.data(), g.dgamma.data(),
                                 g.dbeta.data(), mode);
  return g;
}

Grads random_grads(const BatchNormShape& s, uint64_t seed) {
  return {random_vector<float>(sz(count(s)), seed), random_vector<float>(sz(s.c), seed + 1),
          random_vector<float>(sz(s.c), seed + 2)};
}

void expect_backward_matches(const BatchNormShape& s, Inputs kind, uint64_t seed) {
  const BackwardCase c = make_backward_case(s, kind, seed);
  for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
    const Grads seeds = random_grads(s, seed + 10);
    const Grads expected = cpu_backward(s, c, mode, seeds);
    const Grads got = cuda_backward(s, c, mode, seeds);
    const bool accumulate = mode == GradMode::Accumulate;
    const std::string what = describe(s) + (kind == Inputs::Offset ? " offset" : "") +
                             (accumulate ? " accumulate" : " overwrite");
    const Grads fresh = cpu_backward(s, c, GradMode::Overwrite, seeds);
    EXPECT_TRUE(all_close(got.dx, expected.dx, kRelTol,
                          kAbsTol + (accumulate ? accumulate_abs_tol(seeds.dx, fresh.dx) : 0.0)))
        << what << " dx";
    const double param_tol = parameter_abs_tol(s);
    EXPECT_TRUE(all_close(got.dgamma, expected.dgamma, kRelTol,
                          param_tol + (accumulate ? accumulate_abs_tol(seeds.dgamma, fresh.dgamma) : 0.0)))
        << what << " dgamma";
    EXPECT_TRUE(all_close(got.dbeta, expected.dbeta, kRelTol,
                          param_tol + (accumulate ? accumulate_abs_tol(seeds.dbeta, fresh.dbeta) : 0.0)))
        << what << " dbeta";
  }
}

TEST(CudaBatchNorm, BackwardMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 400;
  for (const BatchNormShape& s : odd_shapes())
    for (Inputs kind : {Inputs::Centered, Inputs::Offset}) expect_backward_matches(s, kind, seed += 20);
}

TEST(CudaBatchNorm, BackwardWorkloadShapesMatchCpu) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 500;
  for (const BatchNormShape& s : workload_shapes()) expect_backward_matches(s, Inputs::Centered, seed += 20);
}

// Null outputs are skipped and leave their buffers alone; the others are still right.
TEST(CudaBatchNorm, BackwardHonoursNullGradients) {
  POLYTASK_REQUIRE_GPU();
  for (const BatchNormShape& s : {BatchNormShape{3, 5, 121}, BatchNormShape{16, 3, 289}}) {
    const BackwardCase c = make_backward_case(s, Inputs::Centered, 600);
    const Grads seeds = random_grads(s, 610);
    const Grads expected = cpu_backward(s, c, GradMode::Accumulate, seeds);

    const Grads params_only = cuda_backward(s, c, GradMode::Accumulate, seeds, false, true);
    EXPECT_EQ(params_only.dx, seeds.dx) << describe(s) << " dx must stay untouched";
    EXPECT_TRUE(all_close(params_only.dgamma, expected.dgamma, kRelTol, 1e-6)) << describe(s);
    EXPECT_TRUE(all_close(params_only.dbeta, expected.dbeta, kRelTol, 1e-6)) << describe(s);

    const Grads dx_only = cuda_backward(s, c, GradMode::Accumulate, seeds, true, false);
    EXPECT_EQ(dx_only.dgamma, seeds.dgamma) << describe(s) << " dgamma must stay untouched";
    EXPECT_EQ(dx_only.dbeta, seeds.dbeta) << describe(s) << " dbeta must stay untouched";
    EXPECT_TRUE(all_close(dx_only.dx, expected.dx, kRelTol, 1e-6)) << describe(s);
  }
}

TEST(CudaBatchNorm, EmptyBatchBackwardZeroesParameterGradients) {
  POLYTASK_REQUIRE_GPU();
  const BatchNormShape s{0, 3, 5};
  BackwardCase c;
  c.gamma = {1.0f, 2.0f, 3.0f};
  c.save_mean = {0.0f, 0.0f, 0.0f};
  c.save_invstd = {1.0f, 1.0f, 1.0f};
  const Grads got = cuda_backward(s, c, GradMode::Overwrite, Grads{});
  EXPECT_EQ(got.dgamma, std::vector<float>(3, 0.0f));
  EXPECT_EQ(got.dbeta, std::vector<float>(3, 0.0f));
}

// ---- determinism ----------------------------------------------------------------------------------

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TEST(CudaBatchNorm, RepeatsAreBitIdentical) {
  POLYTASK_REQUIRE_GPU();
  // Both paths: one block per channel, and several (partials poisoned afresh for each run).
  for (const BatchNormShape& s : {BatchNormShape{3, 5, 121}, BatchNormShape{33, 7, 200}}) {
    const std::vector<float> x = make_x(s, Inputs::Offset, 700);
    const Params p = make_params(s.c, 701);
    const TrainResult a = cuda_train(s, x, p), b = cuda_train(s, x, p);
    EXPECT_TRUE(same_bits(a.y, b.y)) << describe(s);
    EXPECT_TRUE(same_bits(a.save_mean, b.save_mean)) << describe(s);
    EXPECT_TRUE(same_bits(a.save_invstd, b.save_invstd)) << describe(s);
    EXPECT_TRUE(same_bits(a.running_var, b.running_var)) << describe(s);

    const BackwardCase c = make_backward_case(s, Inputs::Centered, 702);
    const Grads seeds = random_grads(s, 703);
    const Grads g1 = cuda_backward(s, c, GradMode::Accumulate, seeds);
    const Grads g2 = cuda_backward(s, c, GradMode::Accumulate, seeds);
    EXPECT_TRUE(same_bits(g1.dx, g2.dx)) << describe(s);
    EXPECT_TRUE(same_bits(g1.dgamma, g2.dgamma)) << describe(s);
    EXPECT_TRUE(same_bits(g1.dbeta, g2.dbeta)) << describe(s);
  }
}

// ---- cuDNN ----------------------------------------------------------------------------------------

#if !defined(POLYTASK_CUDA_EMULATION) && defined(POLYTASK_WITH_CUDNN)
// cuDNN computes in float (its own reduction order and formulas), so the comparison tolerances
// are float-sized: the statistics and y within 1e-5 relative (sums of up to 1M floats), the
// gradients within 1e-4 of their largest magnitude (dx cancels two batch sums against m·dy).
// What is compared: y, save_mean, save_invstd, running_mean (cuDNN's factor = 1 - momentum), and
// the batch variance through running_var with momentum 0 — cuDNN's is unbiased, ·m/(m-1).
TEST(CudaBatchNorm, AgreesWithCudnn) {
  POLYTASK_REQUIRE_GPU();
  vendor::CudnnHandle handle;
  std::vector<BatchNormShape> shapes = {{3, 5, 121}, {7, 3, 1}, {16, 3, 289}, {33, 7, 200}};
  for (const BatchNormShape& s : workload_shapes()) shapes.push_back(s);
  uint64_t seed = 800;
  for (const BatchNormShape& s : shapes) {
    const std::vector<float> x = make_x(s, Inputs::Centered, seed += 5);
    const Params p = make_params(s.c, seed + 1);
    const TrainResult ours = cuda_train(s, x, p);

    DeviceArray<float> d_x(x), d_y(x.size()), gamma(p.gamma), beta(p.beta);
    DeviceArray<float> save_mean(sz(s.c)), save_invstd(sz(s.c));
    DeviceArray<float> running_mean(p.running_mean), running_var(p.running_var);
    vendor::cudnn_batchnorm_forward_train(handle, s, d_x.get(), gamma.get(), beta.get(), kEps,
                                          kMomentum, d_y.get(), save_mean.get(),
                                          save_invstd.get(), running_mean.get(),
                                          running_var.get(), test_stream());
    EXPECT_TRUE(all_close(d_y.download(), ours.y, 1e-5, 1e-5)) << describe(s) << " y";
    EXPECT_TRUE(all_close(save_mean.download(), ours.save_mean, 1e-5, 1e-6)) << describe(s);
    EXPECT_TRUE(all_close(save_invstd.download(), ours.save_invstd, 1e-5, 0.0)) << describe(s);
    EXPECT_TRUE(all_close(running_mean.download(), ours.running_mean, 1e-5, 1e-7)) << describe(s);

    // Momentum 0: running_var becomes the batch variance, unbiased for cuDNN.
    const double m = static_cast<double>(s.n * s.spatial);
    DeviceArray<float> our_var(p.running_var), their_var(p.running_var), scratch_mean(p.running_mean);
    DeviceArray<double> partials(sz(kReduceWorkspace));
    batchnorm_forward_train(s, d_x.get(), gamma.get(), beta.get(), kEps, 0.0f, d_y.get(),
                            save_mean.get(), save_invstd.get(), scratch_mean.get(), our_var.get(),
                            partials.get(), test_stream());
    vendor::cudnn_batchnorm_forward_train(handle, s, d_x.get(), gamma.get(), beta.get(), kEps,
                                          0.0f, d_y.get(), save_mean.get(), save_invstd.get(),
                                          scratch_mean.get(), their_var.get(), test_stream());
    std::vector<double> unbiased;
    for (float v : our_var.download()) unbiased.push_back(static_cast<double>(v) * m / (m - 1.0));
    EXPECT_TRUE(all_close(their_var.download(), unbiased, 1e-5, 1e-7)) << describe(s) << " var";

    // Inference from the same running averages.
    DeviceArray<float> infer_ours(x.size()), infer_theirs(x.size());
    DeviceArray<float> rm(p.running_mean), rv(p.running_var);
    batchnorm_forward_infer(s, d_x.get(), gamma.get(), beta.get(), rm.get(), rv.get(), kEps,
                            infer_ours.get(), test_stream());
    vendor::cudnn_batchnorm_forward_infer(handle, s, d_x.get(), gamma.get(), beta.get(), rm.get(),
                                          rv.get(), kEps, infer_theirs.get(), test_stream());
    EXPECT_TRUE(all_close(infer_theirs.download(), infer_ours.download(), 1e-5, 1e-5))
        << describe(s) << " inference";

    // Backward from the same saved statistics (ours), both modes.
    const std::vector<float> dy = random_vector<float>(x.size(), seed + 2);
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const Grads seeds = random_grads(s, seed + 3);
      const BackwardCase c{x, dy, p.gamma, ours.save_mean, ours.save_invstd};
      const Grads mine = cuda_backward(s, c, mode, seeds);
      DeviceArray<float> d_dy(dy), d_mean(ours.save_mean), d_invstd(ours.save_invstd);
      DeviceArray<float> dx(x.size()), dgamma(sz(s.c)), dbeta(sz(s.c));
      if (mode == GradMode::Accumulate) {
        dx.upload(seeds.dx);
        dgamma.upload(seeds.dgamma);
        dbeta.upload(seeds.dbeta);
      }
      vendor::cudnn_batchnorm_backward(handle, s, d_x.get(), d_dy.get(), gamma.get(), d_mean.get(),
                                       d_invstd.get(), kEps, dx.get(), dgamma.get(), dbeta.get(),
                                       mode, test_stream());
      auto largest = [](const std::vector<float>& v) {
        double l = 0.0;
        for (float e : v) l = std::max(l, std::fabs(static_cast<double>(e)));
        return l;
      };
      EXPECT_TRUE(all_close(dx.download(), mine.dx, 0.0, 1e-4 * largest(mine.dx))) << describe(s) << " dx";
      EXPECT_TRUE(all_close(dgamma.download(), mine.dgamma, 0.0, 1e-4 * largest(mine.dgamma) + 1e-6))
          << describe(s) << " dgamma";
      EXPECT_TRUE(all_close(dbeta.download(), mine.dbeta, 0.0, 1e-4 * largest(mine.dbeta) + 1e-6))
          << describe(s) << " dbeta";
    }
  }
}
#else
TEST(CudaBatchNorm, AgreesWithCudnn) {
  POLYTASK_REQUIRE_GPU();
  GTEST_SKIP() << (polytask::testing::kEmulated
                       ? "emulated build: cuDNN runs only on a GPU"
                       : "built without cuDNN (POLYTASK_WITH_CUDNN is not defined)");
}
#endif

}  // namespace
}  // namespace polytask::kernels::cuda
