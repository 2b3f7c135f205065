// CUDA convolution (kernels/cuda/conv2d.cu) against the CPU reference in double: odd shapes
// ('valid' and 'same', stride 2 and 3, 1x1, 5x5, non-square kernels with asymmetric 'same'
// padding, C_in = 1, channel counts just past the tile widths, depths past the gather table),
// outputs NaN-poisoned first, Overwrite and Accumulate (gradients pre-seeded), bias and db
// nullptr, the fused ReLU, every tile configuration and chunk count, bit-identical repeats, the
// workload's four layers, and (on a GPU with cuDNN) cuDNN as a second oracle.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/error.h"
#include "tests/support/conv_problem.h"
#include "tests/support/cuda_test.h"
#include "tests/support/error_bounds.h"

#if !defined(POLYTASK_CUDA_EMULATION) && defined(POLYTASK_WITH_CUDNN)
#include "kernels/vendor/cudnn_conv.h"
#endif

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::DeviceArray;
using polytask::testing::kEmulated;
using polytask::testing::test_stream;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

// The per-element bound against the exact (double) result, as in tests/cuda/test_gemm.cpp: a
// chain of `depth` fused multiply-adds rounds each time by at most 2^-24 of the running sum,
// which never exceeds S = the same computation on absolute values (sum |x||w| + |b|, + |seed|
// when accumulating). With random signs the roundings add like a random walk, ~sqrt(depth);
// a factor 4 of margin plus a few epilogue roundings: 2^-24·(4·sqrt(depth) + 4)·S. That is far
// below the effect of one wrong or missing term (~S/depth) for every depth used here.
//   forward:         depth = C_in·K_h·K_w (one chain per output, then + bias)
//   backward-data:   depth = C_out·K_h·K_w (the gather visits every tap; masked ones add 0)
//   backward-filter: depth = N·H_out·W_out (chains over pixel slabs, summed in a fixed order;
//                    the whole sum is the worst case), the same for db
double tolerance(int64_t depth) { return polytask::testing::fp32_chain_tolerance(depth); }

using namespace polytask::testing::conv;
using Reference = polytask::testing::BoundedReference;
using polytask::testing::close_to;
using polytask::testing::same_bits;

// The workload's four layers (MNIST and CIFAR-sized trunks), plus the last one at stride 2.
// On a GPU at batch 128; in emulation and under POLYTASK_TEST_SMALL at batch 2 (the per-image work is the same, the
// emulator's cost is per thread).
std::vector<Case> workload_cases() {
  const int64_t n = polytask::testing::small_shapes() ? 2 : 128;
  return {
      {"28x28x1 -> 32 valid", conv2d_shape(n, 1, 28, 28, 32, 3, 3, 1, 1, Padding::Valid)},
      {"13x13x32 -> 64 valid", conv2d_shape(n, 32, 13, 13, 64, 3, 3, 1, 1, Padding::Valid)},
      {"32x32x3 -> 32 same", conv2d_shape(n, 3, 32, 32, 32, 3, 3, 1, 1, Padding::Same)},
      {"32x32x32 -> 32 same", conv2d_shape(n, 32, 32, 32, 32, 3, 3, 1, 1, Padding::Same)},
      {"32x32x32 -> 32 same, stride 2", conv2d_shape(n, 32, 32, 32, 32, 3, 3, 2, 2, Padding::Same)},
  };
}

// The exact result (cpu:: in double) and its error scale S (the same on absolute values).
Reference forward_reference(const Conv2dShape& s, const Inputs& in, bool with_bias, bool relu) {
  return conv_forward_reference(s, in.x, in.w, with_bias ? &in.b : nullptr, relu);
}

Reference backward_data_reference(const Conv2dShape& s, const Inputs& in, GradMode mode) {
  return conv_backward_data_reference(s, in.dy, in.w, in.dx_seed, mode);
}

FilterReference backward_filter_reference(const Conv2dShape& s, const Inputs& in, GradMode mode) {
  return conv_backward_filter_reference(s, in.x, in.dy, in.dw_seed, in.db_seed, mode);
}

// ---- running our kernels ----------------------------------------------------------------------

struct Workspace {
  explicit Workspace(const Conv2dShape& s, const Conv2dTuning& tuning = {})
      : floats(sz(std::max<int64_t>(1, conv2d_workspace_elements(s, tuning)))) {}
  DeviceArray<float> floats;
};

std::vector<float> run_forward(const Conv2dShape& s, const Inputs& in, bool with_bias, bool relu,
                               const Conv2dTuning& tuning = {}) {
  DeviceArray<float> x(in.x), w(in.w), b(in.b), y(sz(y_size(s)));  // y: NaN-poisoned
  Workspace ws(s, tuning);
  Conv2dEpilogue epilogue;
  epilogue.relu = relu;
  conv2d_forward(s, x.get(), w.get(), with_bias ? b.get() : nullptr, y.get(), ws.floats.get(),
                 test_stream(), epilogue, tuning);
  return y.download();
}

std::vector<float> run_backward_data(const Conv2dShape& s, const Inputs& in, GradMode mode,
                                     const Conv2dTuning& tuning = {}) {
  DeviceArray<float> dy(in.dy), w(in.w), dx(sz(x_size(s)));  // dx: NaN-poisoned
  if (mode == GradMode::Accumulate) dx.upload(in.dx_seed);
  Workspace ws(s, tuning);
  conv2d_backward_data(s, dy.get(), w.get(), dx.get(), mode, ws.floats.get(), test_stream(),
                       tuning);
  return dx.download();
}

struct FilterResult {
  std::vector<float> dw, db;
};

FilterResult run_backward_filter(const Conv2dShape& s, const Inputs& in, GradMode mode,
                                 bool with_db, const Conv2dTuning& tuning = {}) {
  DeviceArray<float> x(in.x), dy(in.dy), dw(sz(w_size(s))), db(sz(s.c_out));  // NaN-poisoned
  if (mode == GradMode::Accumulate) {
    dw.upload(in.dw_seed);
    db.upload(in.db_seed);
  }
  Workspace ws(s, tuning);
  conv2d_backward_filter(s, x.get(), dy.get(), dw.get(), with_db ? db.get() : nullptr, mode,
                         ws.floats.get(), test_stream(), tuning);
  return {dw.download(), db.download()};
}

// ---- checks shared by the odd shapes and the workload ---------------------------------------

void check_forward(const Case& c, uint64_t seed) {
  const Inputs in = make_inputs(c.s, seed);
  for (const bool with_bias : {true, false}) {
    const Reference ref = forward_reference(c.s, in, with_bias, false);
    EXPECT_TRUE(close_to(cat(describe(c), with_bias ? " forward" : " forward, no bias"),
                         run_forward(c.s, in, with_bias, false), ref.value, ref.scale,
                         tolerance(c.s.patch_size())));
  }
}

void check_backward_data(const Case& c, uint64_t seed) {
  const Inputs in = make_inputs(c.s, seed);
  for (const GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
    const Reference ref = backward_data_reference(c.s, in, mode);
    EXPECT_TRUE(
        close_to(cat(describe(c), mode == GradMode::Overwrite ? " dx overwrite" : " dx accumulate"),
                 run_backward_data(c.s, in, mode), ref.value, ref.scale,
                 tolerance(c.s.c_out * c.s.k_h * c.s.k_w)));
  }
}

void check_backward_filter(const Case& c, uint64_t seed, const Conv2dTuning& tuning = {},
                           const std::string& label = "") {
  const Inputs in = make_inputs(c.s, seed);
  const double tol = tolerance(std::max<int64_t>(1, c.s.n * c.s.out_pixels()));
  for (const GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
    const FilterReference ref = backward_filter_reference(c.s, in, mode);
    const std::string what =
        cat(describe(c), label, mode == GradMode::Overwrite ? " overwrite" : " accumulate");
    const FilterResult got = run_backward_filter(c.s, in, mode, true, tuning);
    EXPECT_TRUE(close_to(what + " dw", got.dw, ref.dw.value, ref.dw.scale, tol));
    EXPECT_TRUE(close_to(what + " db", got.db, ref.db.value, ref.db.scale, tol));
    // db = nullptr: dw alone, and the db buffer (poisoned or seeded) left untouched.
    const FilterResult alone = run_backward_filter(c.s, in, mode, false, tuning);
    EXPECT_TRUE(close_to(what + " dw (no db)", alone.dw, ref.dw.value, ref.dw.scale, tol));
    if (mode == GradMode::Accumulate)
      EXPECT_TRUE(same_bits(alone.db, in.db_seed)) << what << ": db written without db";
    else
      for (const float v : alone.db) EXPECT_TRUE(std::isnan(v)) << what << ": db written";
  }
}

// ---- the tests ----------------------------------------------------------------------------------

TEST(CudaConv2d, ForwardMatchesCpuOnOddShapes) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const Case& c : odd_cases()) check_forward(c, seed += 10);
}

TEST(CudaConv2d, ForwardFusedBiasAndRelu) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 200;
  for (const Case& c : odd_cases()) {
    const Inputs in = make_inputs(c.s, seed += 10);
    for (const bool with_bias : {true, false}) {
      const std::vector<float> got = run_forward(c.s, in, with_bias, true);
      const Reference ref = forward_reference(c.s, in, with_bias, true);
      EXPECT_TRUE(close_to(describe(c) + " forward + ReLU", got, ref.value, ref.scale,
                           tolerance(c.s.patch_size())));
      for (const float v : got) ASSERT_GE(v, 0.0f) << describe(c);
    }
  }
}

TEST(CudaConv2d, BackwardDataOverwriteAndAccumulate) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 300;
  for (const Case& c : odd_cases()) check_backward_data(c, seed += 10);
}

TEST(CudaConv2d, BackwardFilterOverwriteAndAccumulateWithAndWithoutDb) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 400;
  for (const Case& c : odd_cases()) check_backward_filter(c, seed += 10);
}

TEST(CudaConv2d, BackwardFilterEveryTileConfigurationAndChunkCount) {
  POLYTASK_REQUIRE_GPU();
  // Chunk counts 1 (direct write), 2 and 5 (partial sums + the finishing pass; 5 leaves a
  // short last chunk), on shapes whose patch fills one, two and several column tiles.
  const std::vector<Case> cases = {
      {"stride 2 same", conv2d_shape(3, 5, 11, 11, 7, 3, 3, 2, 2, Padding::Same)},
      {"C_out 33, 20-column patch", conv2d_shape(2, 5, 6, 7, 33, 2, 2, 1, 1, Padding::Same)},
  };
  uint64_t seed = 500;
  for (const Case& c : cases)
    for (const Conv2dFilterTiles tiles : {Conv2dFilterTiles::M32N16, Conv2dFilterTiles::M32N32,
                                          Conv2dFilterTiles::M32N64, Conv2dFilterTiles::M64N64})
      for (const int64_t chunks : {1, 2, 5}) {
        Conv2dTuning tuning;
        tuning.filter_tiles = tiles;
        tuning.filter_chunks = chunks;
        check_backward_filter(c, seed += 10, tuning,
                              cat(" tiles ", static_cast<int>(tiles), " chunks ", chunks));
      }
}

TEST(CudaConv2d, EveryGatherTileConfigurationGivesTheSameBits) {
  POLYTASK_REQUIRE_GPU();
  // Each forward / backward-data output is one thread's FMA chain over the depth in order,
  // whatever the tiling, so every configuration must agree with Auto to the bit.
  const Case c{"C_in 40, C_out 65", conv2d_shape(2, 40, 5, 6, 65, 3, 3, 2, 1, Padding::Same)};
  const Inputs in = make_inputs(c.s, 600);
  const std::vector<float> y = run_forward(c.s, in, true, true);
  const std::vector<float> dx = run_backward_data(c.s, in, GradMode::Accumulate);
  const Reference y_ref = forward_reference(c.s, in, true, true);
  EXPECT_TRUE(close_to(describe(c), y, y_ref.value, y_ref.scale, tolerance(c.s.patch_size())));
  for (const Conv2dTiles tiles :
       {Conv2dTiles::M128N64, Conv2dTiles::M64N64, Conv2dTiles::M128N32, Conv2dTiles::M64N32}) {
    Conv2dTuning tuning;
    tuning.tiles = tiles;
    EXPECT_TRUE(same_bits(run_forward(c.s, in, true, true, tuning), y))
        << "forward, tiles " << static_cast<int>(tiles);
    EXPECT_TRUE(same_bits(run_backward_data(c.s, in, GradMode::Accumulate, tuning), dx))
        << "backward-data, tiles " << static_cast<int>(tiles);
  }
}

TEST(CudaConv2d, BitIdenticalRepeats) {
  POLYTASK_REQUIRE_GPU();
  const Case c{"stride 2 same", conv2d_shape(3, 5, 11, 11, 7, 3, 3, 2, 2, Padding::Same)};
  const Inputs in = make_inputs(c.s, 700);
  Conv2dTuning chunked;  // several chunks: the partial sums and their fixed-order finish
  chunked.filter_chunks = 3;
  EXPECT_TRUE(same_bits(run_forward(c.s, in, true, true), run_forward(c.s, in, true, true)));
  EXPECT_TRUE(same_bits(run_backward_data(c.s, in, GradMode::Accumulate),
                        run_backward_data(c.s, in, GradMode::Accumulate)));
  for (const Conv2dTuning& tuning : {Conv2dTuning{}, chunked}) {
    const FilterResult first = run_backward_filter(c.s, in, GradMode::Overwrite, true, tuning);
    const FilterResult again = run_backward_filter(c.s, in, GradMode::Overwrite, true, tuning);
    EXPECT_TRUE(same_bits(first.dw, again.dw));
    EXPECT_TRUE(same_bits(first.db, again.db));
  }
}

TEST(CudaConv2d, EmptyBatch) {
  POLYTASK_REQUIRE_GPU();
  // No images: nothing to write for y and dx; Overwrite still promises zero dw and db, and
  // Accumulate leaves them as they were.
  const Conv2dShape s = conv2d_shape(0, 3, 6, 6, 4, 3, 3, 1, 1, Padding::Same);
  const Inputs in = make_inputs(s, 800);
  EXPECT_TRUE(run_forward(s, in, true, false).empty());
  EXPECT_TRUE(run_backward_data(s, in, GradMode::Overwrite).empty());
  const FilterResult zero = run_backward_filter(s, in, GradMode::Overwrite, true);
  for (const float v : zero.dw) EXPECT_EQ(v, 0.0f);
  for (const float v : zero.db) EXPECT_EQ(v, 0.0f);
  const FilterResult kept = run_backward_filter(s, in, GradMode::Accumulate, true);
  EXPECT_TRUE(same_bits(kept.dw, in.dw_seed));
  EXPECT_TRUE(same_bits(kept.db, in.db_seed));
}

TEST(CudaConv2d, WorkspaceIsNonDecreasingInTheBatch) {
  POLYTASK_REQUIRE_GPU();
  // The engine sizes the workspace for its largest batch and runs smaller ones in it.
  for (const Case& c : workload_cases()) {
    int64_t previous = 0;
    for (const int64_t n : {0, 1, 2, 7, 32, 128, 129, 1000, 1024}) {
      Conv2dShape s = c.s;
      s.n = n;
      const int64_t now = conv2d_workspace_elements(s);
      EXPECT_GE(now, previous) << c.name << " n=" << n;
      previous = now;
    }
  }
}

TEST(CudaConv2d, RejectsAMissingWorkspace) {
  POLYTASK_REQUIRE_GPU();
  const Conv2dShape s = conv2d_shape(2, 3, 8, 8, 4, 3, 3, 1, 1, Padding::Same);
  Conv2dTuning tuning;
  tuning.filter_chunks = 4;
  ASSERT_GT(conv2d_workspace_elements(s, tuning), 0);
  DeviceArray<float> x(sz(x_size(s))), dy(sz(y_size(s))), dw(sz(w_size(s)));
  EXPECT_THROW(conv2d_backward_filter(s, x.get(), dy.get(), dw.get(), nullptr, GradMode::Overwrite,
                                      nullptr, test_stream(), tuning),
               polytask::Error);
}

TEST(CudaConv2d, WorkloadShapes) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 900;
  for (const Case& c : workload_cases()) {
    check_forward(c, seed += 10);
    check_backward_data(c, seed += 10);
    check_backward_filter(c, seed += 10);
  }
}

#if !defined(POLYTASK_CUDA_EMULATION) && defined(POLYTASK_WITH_CUDNN)
// cuDNN as a second oracle (FP32 FMA math, no TF32), on the shapes whose padding cuDNN can
// express (symmetric; vendor::CudnnConv2d::supports). cuDNN may pick Winograd or FFT
// algorithms whose transforms round more than a plain sum does, so it gets a looser bound
// against the exact result: 1e-4·S, still ~100x below one missing term at the forward and
// backward-data depths (<= 600). Ours is held to the tight bound on the same inputs.
constexpr double kCudnnTolerance = 1e-4;

TEST(CudaConv2d, AgreesWithCudnn) {
  POLYTASK_REQUIRE_GPU();
  vendor::CudnnHandle handle;
  std::vector<Case> cases = odd_cases();
  for (const Case& c : workload_cases()) cases.push_back(c);
  uint64_t seed = 1000;
  int compared = 0;
  for (const Case& c : cases) {
    if (!vendor::CudnnConv2d::supports(c.s)) continue;  // asymmetric 'same' padding
    ++compared;
    const vendor::CudnnConv2d conv(handle, c.s);
    const Inputs in = make_inputs(c.s, seed += 10);
    DeviceArray<float> x(in.x), w(in.w), b(in.b), dy(in.dy);
    const std::string what = describe(c);

    for (const bool relu : {false, true}) {
      DeviceArray<float> y(sz(y_size(c.s)));
      conv.forward(x.get(), w.get(), b.get(), y.get(), relu, test_stream());
      const Reference ref = forward_reference(c.s, in, true, relu);
      EXPECT_TRUE(close_to(what + " cuDNN forward (" + conv.forward_algorithm() + ")", y.download(),
                           ref.value, ref.scale, kCudnnTolerance));
      EXPECT_TRUE(close_to(what + " ours forward", run_forward(c.s, in, true, relu), ref.value,
                           ref.scale, tolerance(c.s.patch_size())));
    }
    for (const GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      DeviceArray<float> dx(in.dx_seed);
      conv.backward_data(dy.get(), w.get(), dx.get(), mode, test_stream());
      const Reference ref = backward_data_reference(c.s, in, mode);
      EXPECT_TRUE(close_to(what + " cuDNN backward-data (" + conv.backward_data_algorithm() + ")",
                           dx.download(), ref.value, ref.scale, kCudnnTolerance));

      DeviceArray<float> dw(in.dw_seed), db(in.db_seed);
      conv.backward_filter(x.get(), dy.get(), dw.get(), db.get(), mode, test_stream());
      const FilterReference fref = backward_filter_reference(c.s, in, mode);
      const std::string filter_what =
          what + " cuDNN backward-filter (" + conv.backward_filter_algorithm() + ")";
      EXPECT_TRUE(close_to(filter_what + " dw", dw.download(), fref.dw.value, fref.dw.scale,
                           kCudnnTolerance));
      EXPECT_TRUE(close_to(filter_what + " db", db.download(), fref.db.value, fref.db.scale,
                           kCudnnTolerance));
    }
  }
  EXPECT_GE(compared, 8);
}
#else
TEST(CudaConv2d, AgreesWithCudnn) {
  POLYTASK_REQUIRE_GPU();
  GTEST_SKIP() << "cuDNN is not in this build (emulated, or cuDNN was not found)";
}
#endif

}  // namespace
}  // namespace polytask::kernels::cuda
