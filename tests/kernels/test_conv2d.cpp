// CPU conv2d: forward against a direct loop, backward against central differences, float
// against double, the Overwrite/Accumulate contract, chunking, and Keras output sizes.
#include "kernels/conv2d.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels {
namespace {

using polytask::testing::all_close;
using polytask::testing::check_gradient;
using polytask::testing::dot;
using polytask::testing::poison;
using polytask::testing::random_vector;

struct Geometry {
  int64_t n, c_in, h, w, c_out, k_h, k_w, stride_h, stride_w;
  Padding padding;
};

std::string describe(const Geometry& g) {
  return cat("N", g.n, " C", g.c_in, " ", g.h, "x", g.w, " -> ", g.c_out, " of ", g.k_h, "x",
             g.k_w, " stride ", g.stride_h, "x", g.stride_w,
             g.padding == Padding::Same ? " same" : " valid");
}

Conv2dShape shape_of(const Geometry& g) {
  return conv2d_shape(g.n, g.c_in, g.h, g.w, g.c_out, g.k_h, g.k_w, g.stride_h, g.stride_w,
                      g.padding);
}

// Odd sizes, non-square inputs, 1x1 / 5x5 / even / non-square kernels, stride 1, 2, 3 (a
// stride wider than the kernel leaves pixels no window reads), 'same' kernels wider than the
// input.
const std::vector<Geometry> kGeometries = {
    {3, 5, 11, 11, 4, 3, 3, 1, 1, Padding::Valid}, {3, 5, 11, 11, 4, 3, 3, 2, 2, Padding::Same},
    {2, 3, 9, 7, 6, 3, 3, 1, 1, Padding::Same},    {2, 3, 9, 7, 6, 3, 3, 2, 2, Padding::Valid},
    {3, 4, 8, 10, 5, 1, 1, 1, 1, Padding::Valid},  {2, 4, 7, 7, 3, 1, 1, 2, 2, Padding::Same},
    {2, 3, 11, 9, 4, 5, 5, 1, 1, Padding::Same},   {2, 2, 12, 13, 3, 5, 5, 3, 3, Padding::Valid},
    {2, 3, 9, 10, 2, 4, 2, 2, 1, Padding::Same},   {2, 3, 10, 11, 4, 2, 2, 3, 3, Padding::Valid},
    {2, 2, 3, 2, 3, 5, 5, 1, 1, Padding::Same},    {1, 1, 5, 5, 1, 5, 5, 1, 1, Padding::Valid},
};

// Direct loop in double: the definition the kernel must reproduce.
std::vector<double> naive_forward(const Conv2dShape& s, const std::vector<double>& x,
                                  const std::vector<double>& w, const double* b) {
  std::vector<double> y(size_t(s.n * s.c_out * s.out_pixels()));
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t co = 0; co < s.c_out; ++co)
      for (int64_t oh = 0; oh < s.h_out; ++oh)
        for (int64_t ow = 0; ow < s.w_out; ++ow) {
          double sum = b ? b[co] : 0.0;
          for (int64_t ci = 0; ci < s.c_in; ++ci)
            for (int64_t i = 0; i < s.k_h; ++i)
              for (int64_t j = 0; j < s.k_w; ++j) {
                const int64_t ih = oh * s.stride_h - s.pad_top + i;
                const int64_t iw = ow * s.stride_w - s.pad_left + j;
                if (ih < 0 || ih >= s.h_in || iw < 0 || iw >= s.w_in) continue;
                sum += x[size_t(((n * s.c_in + ci) * s.h_in + ih) * s.w_in + iw)] *
                       w[size_t(((co * s.c_in + ci) * s.k_h + i) * s.k_w + j)];
              }
          y[size_t(((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow)] = sum;
        }
  return y;
}

// Owns the buffers of one problem and runs the kernels with a NaN-poisoned workspace plus a
// guard band, so a test also proves conv2d_workspace_elements is large enough.
template <class T>
struct Conv {
  static constexpr size_t kGuard = 64;
  static constexpr double kSentinel = 12345.0;
  Conv2dShape s;
  std::vector<T> workspace;

  explicit Conv(const Conv2dShape& shape)
      : s(shape), workspace(size_t(cpu::conv2d_workspace_elements(shape)) + kGuard) {}

  size_t x_size() const { return size_t(s.n * s.c_in * s.h_in * s.w_in); }
  size_t w_size() const { return size_t(s.c_out * s.patch_size()); }
  size_t y_size() const { return size_t(s.n * s.c_out * s.out_pixels()); }

  T* fresh_workspace() {
    poison(workspace);
    std::fill(workspace.end() - kGuard, workspace.end(), T(kSentinel));
    return workspace.data();
  }
  void expect_guard_intact() const {
    for (size_t i = workspace.size() - kGuard; i < workspace.size(); ++i)
      ASSERT_EQ(double(workspace[i]), kSentinel) << "workspace overrun at guard element " << i;
  }

  std::vector<T> forward(const std::vector<T>& x, const std::vector<T>& w, const T* b) {
    std::vector<T> y(y_size());
    poison(y);
    cpu::conv2d_forward(s, x.data(), w.data(), b, y.data(), fresh_workspace());
    expect_guard_intact();
    return y;
  }
  void backward_data(const std::vector<T>& dy, const std::vector<T>& w, std::vector<T>& dx,
                     GradMode mode) {
    cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data(), mode, fresh_workspace());
    expect_guard_intact();
  }
  void backward_filter(const std::vector<T>& x, const std::vector<T>& dy, std::vector<T>& dw,
                       T* db, GradMode mode) {
    cpu::conv2d_backward_filter(s, x.data(), dy.data(), dw.data(), db, mode, fresh_workspace());
    expect_guard_intact();
  }
};

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

TEST(Conv2dShape, KerasOutputSizesAndPadding) {
  Conv2dShape s = conv2d_shape(1, 1, 28, 28, 32, 3, 3, 1, 1, Padding::Valid);
  EXPECT_EQ(s.h_out, 26);
  EXPECT_EQ(s.pad_top, 0);
  s = conv2d_shape(1, 1, 13, 12, 1, 3, 3, 2, 2, Padding::Valid);
  EXPECT_EQ(s.h_out, 6);  // floor((13 - 3) / 2) + 1
  EXPECT_EQ(s.w_out, 5);  // floor((12 - 3) / 2) + 1
  s = conv2d_shape(1, 1, 7, 7, 1, 3, 3, 2, 2, Padding::Same);
  EXPECT_EQ(s.h_out, 4);  // ceil(7 / 2), total padding 2: one each side
  EXPECT_EQ(s.pad_top, 1);
  EXPECT_EQ(s.pad_left, 1);
  s = conv2d_shape(1, 1, 8, 8, 1, 3, 3, 2, 2, Padding::Same);
  EXPECT_EQ(s.h_out, 4);  // total padding 1 goes to the bottom/right, as in TensorFlow
  EXPECT_EQ(s.pad_top, 0);
  s = conv2d_shape(1, 1, 32, 31, 1, 3, 3, 1, 1, Padding::Same);
  EXPECT_EQ(s.h_out, 32);
  EXPECT_EQ(s.w_out, 31);
  EXPECT_EQ(s.pad_top, 1);
  s = conv2d_shape(1, 1, 5, 5, 1, 4, 1, 1, 1, Padding::Same);
  EXPECT_EQ(s.h_out, 5);
  EXPECT_EQ(s.pad_top, 1);  // total 3: one above, two below
  EXPECT_EQ(s.pad_left, 0);
}

TEST(Conv2dShape, ValidKernelThatDoesNotFitThrows) {
  EXPECT_THROW(conv2d_shape(1, 1, 4, 8, 1, 5, 3, 1, 1, Padding::Valid), polytask::Error);
  EXPECT_THROW(conv2d_shape(1, 1, 8, 4, 1, 3, 5, 1, 1, Padding::Valid), polytask::Error);
  EXPECT_NO_THROW(conv2d_shape(1, 1, 4, 4, 1, 5, 5, 1, 1, Padding::Same));
  EXPECT_THROW(conv2d_shape(1, 1, 8, 8, 1, 3, 3, 0, 1, Padding::Valid), polytask::Error);
  try {
    conv2d_shape(2, 3, 4, 4, 8, 5, 5, 1, 1, Padding::Valid);
    FAIL() << "expected polytask::Error";
  } catch (const polytask::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
}

template <class T>
void check_forward_against_naive(double rel_tol, double abs_tol) {
  uint64_t seed = 1;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const Conv2dShape s = shape_of(g);
    Conv<T> conv(s);
    const auto x = random_vector(conv.x_size(), seed++);
    const auto w = random_vector(conv.w_size(), seed++);
    const auto b = random_vector(size_t(s.c_out), seed++);
    const std::vector<T> bt = cast<T>(b);
    EXPECT_TRUE(all_close(conv.forward(cast<T>(x), cast<T>(w), bt.data()),
                          naive_forward(s, x, w, b.data()), rel_tol, abs_tol));
    EXPECT_TRUE(all_close(conv.forward(cast<T>(x), cast<T>(w), nullptr),
                          naive_forward(s, x, w, nullptr), rel_tol, abs_tol));
  }
}

TEST(Conv2dForward, DoubleMatchesDirectLoop) {
  // Only the summation order differs; at most 75 products of magnitude <= 1 per output.
  check_forward_against_naive<double>(1e-12, 1e-13);
}

TEST(Conv2dForward, FloatMatchesDirectLoop) {
  // Float inputs are rounded (rel 6e-8 each) and up to 75 terms summed: |error| < 75 * 1.2e-7.
  check_forward_against_naive<float>(1e-5, 1e-5);
}

TEST(Conv2dForward, EmptyBatchIsANoOp) {
  const Conv2dShape s = conv2d_shape(0, 3, 7, 7, 4, 3, 3, 1, 1, Padding::Same);
  EXPECT_EQ(cpu::conv2d_workspace_elements(s), 0);
  const std::vector<double> w = random_vector(size_t(s.c_out * s.patch_size()), 3);
  cpu::conv2d_forward<double>(s, nullptr, w.data(), nullptr, nullptr, nullptr);
  cpu::conv2d_backward_data<double>(s, nullptr, w.data(), nullptr, GradMode::Overwrite, nullptr);
}

// dot(forward(x, w, b), r) has gradient backward(dy = r) with respect to x, w and b.
TEST(Conv2dBackward, MatchesCentralDifferences) {
  uint64_t seed = 100;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const Conv2dShape s = shape_of(g);
    Conv<double> conv(s);
    auto x = random_vector(conv.x_size(), seed++);
    auto w = random_vector(conv.w_size(), seed++);
    auto b = random_vector(size_t(s.c_out), seed++);
    const auto r = random_vector(conv.y_size(), seed++);
    const auto objective = [&] { return dot(conv.forward(x, w, b.data()), r); };

    std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
    conv.backward_data(r, w, dx, GradMode::Overwrite);
    conv.backward_filter(x, r, dw, db.data(), GradMode::Overwrite);

    // The objective is linear in each input, so the central difference has no truncation
    // error; a large step keeps the cancellation error (~1e-16 * |f| / step) near 1e-13.
    polytask::testing::GradCheckOptions opt;
    opt.step = 1e-2;
    opt.rel_tol = 1e-8;
    opt.abs_tol = 1e-10;
    EXPECT_TRUE(check_gradient("dx", x, dx, objective, opt));
    EXPECT_TRUE(check_gradient("dw", w, dw, objective, opt));
    EXPECT_TRUE(check_gradient("db", b, db, objective, opt));
  }
}

TEST(Conv2d, FloatAgreesWithDouble) {
  uint64_t seed = 200;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const Conv2dShape s = shape_of(g);
    Conv<double> conv_d(s);
    Conv<float> conv_f(s);
    const auto x = random_vector(conv_d.x_size(), seed++);
    const auto w = random_vector(conv_d.w_size(), seed++);
    const auto b = random_vector(size_t(s.c_out), seed++);
    const auto dy = random_vector(conv_d.y_size(), seed++);
    const auto xf = cast<float>(x), wf = cast<float>(w), bf = cast<float>(b), dyf = cast<float>(dy);

    std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
    std::vector<float> dxf(x.size()), dwf(w.size()), dbf(b.size());
    conv_d.backward_data(dy, w, dx, GradMode::Overwrite);
    conv_f.backward_data(dyf, wf, dxf, GradMode::Overwrite);
    conv_d.backward_filter(x, dy, dw, db.data(), GradMode::Overwrite);
    conv_f.backward_filter(xf, dyf, dwf, dbf.data(), GradMode::Overwrite);

    // Inputs in [-1, 1]; the longest float sums are dw's (N * HW <= 363 terms here), whose
    // worst-case rounding is ~363 * 6e-8 = 2e-5 and whose typical one is far smaller.
    EXPECT_TRUE(all_close(conv_f.forward(xf, wf, bf.data()), conv_d.forward(x, w, b.data()), 1e-5,
                          2e-5));
    EXPECT_TRUE(all_close(dxf, dx, 1e-5, 2e-5));
    EXPECT_TRUE(all_close(dwf, dw, 1e-5, 5e-5));
    EXPECT_TRUE(all_close(dbf, db, 1e-5, 5e-5));
  }
}

// Accumulate adds onto a non-zero seed; Overwrite ignores the seed, even a NaN one, and writes
// zeros where no window reaches (the stride-3 geometries).
TEST(Conv2dBackward, OverwriteAndAccumulateContract) {
  uint64_t seed = 300;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const Conv2dShape s = shape_of(g);
    Conv<double> conv(s);
    const auto x = random_vector(conv.x_size(), seed++);
    const auto w = random_vector(conv.w_size(), seed++);
    const auto dy = random_vector(conv.y_size(), seed++);
    std::vector<double> dx(x.size()), dw(w.size()), db(size_t(s.c_out));
    conv.backward_data(dy, w, dx, GradMode::Overwrite);
    conv.backward_filter(x, dy, dw, db.data(), GradMode::Overwrite);

    auto dx_nan = dx, dw_nan = dw, db_nan = db;
    poison(dx_nan);
    poison(dw_nan);
    poison(db_nan);
    conv.backward_data(dy, w, dx_nan, GradMode::Overwrite);
    conv.backward_filter(x, dy, dw_nan, db_nan.data(), GradMode::Overwrite);
    // Same inputs, same order of operations: bit-identical.
    EXPECT_TRUE(all_close(dx_nan, dx, 0, 0));
    EXPECT_TRUE(all_close(dw_nan, dw, 0, 0));
    EXPECT_TRUE(all_close(db_nan, db, 0, 0));

    const auto dx_seed = random_vector(dx.size(), seed++, 2, 3);
    const auto dw_seed = random_vector(dw.size(), seed++, 2, 3);
    const auto db_seed = random_vector(db.size(), seed++, 2, 3);
    auto dx_acc = dx_seed, dw_acc = dw_seed, db_acc = db_seed;
    conv.backward_data(dy, w, dx_acc, GradMode::Accumulate);
    conv.backward_filter(x, dy, dw_acc, db_acc.data(), GradMode::Accumulate);
    std::vector<double> dx_want(dx.size()), dw_want(dw.size()), db_want(db.size());
    for (size_t i = 0; i < dx.size(); ++i) dx_want[i] = dx_seed[i] + dx[i];
    for (size_t i = 0; i < dw.size(); ++i) dw_want[i] = dw_seed[i] + dw[i];
    for (size_t i = 0; i < db.size(); ++i) db_want[i] = db_seed[i] + db[i];
    // Adding the seed first or last changes only the rounding of a few double additions.
    EXPECT_TRUE(all_close(dx_acc, dx_want, 1e-13, 1e-13));
    EXPECT_TRUE(all_close(dw_acc, dw_want, 1e-13, 1e-13));
    EXPECT_TRUE(all_close(db_acc, db_want, 1e-13, 1e-13));
  }
}

TEST(Conv2dBackward, EmptyBatchStillOverwritesFilterGradient) {
  const Conv2dShape s = conv2d_shape(0, 3, 7, 7, 4, 3, 3, 1, 1, Padding::Same);
  std::vector<double> dw(size_t(s.c_out * s.patch_size())), db(size_t(s.c_out));
  poison(dw);
  poison(db);
  cpu::conv2d_backward_filter<double>(s, nullptr, nullptr, dw.data(), db.data(),
                                      GradMode::Overwrite, nullptr);
  EXPECT_TRUE(all_close(dw, std::vector<double>(dw.size(), 0.0), 0, 0));
  EXPECT_TRUE(all_close(db, std::vector<double>(db.size(), 0.0), 0, 0));
  std::fill(dw.begin(), dw.end(), 1.5);
  std::fill(db.begin(), db.end(), -2.0);
  cpu::conv2d_backward_filter<double>(s, nullptr, nullptr, dw.data(), db.data(),
                                      GradMode::Accumulate, nullptr);
  EXPECT_TRUE(all_close(dw, std::vector<double>(dw.size(), 1.5), 0, 0));
  EXPECT_TRUE(all_close(db, std::vector<double>(db.size(), -2.0), 0, 0));
}

// A batch that needs several chunks of the column buffer must give what one image at a time
// gives: forward and dx per image, dw and db summed over images.
TEST(Conv2d, ChunkedBatchMatchesPerImage) {
  const Conv2dShape s = conv2d_shape(67, 16, 32, 30, 8, 3, 3, 1, 1, Padding::Same);
  Conv<double> conv(s);
  ASSERT_LT(cpu::conv2d_workspace_elements(s) * 2,
            s.n * s.out_pixels() * (s.patch_size() + s.c_out))
      << "the batch must span at least three chunks for this test to mean anything";
  const auto x = random_vector(conv.x_size(), 400);
  const auto w = random_vector(conv.w_size(), 401);
  const auto b = random_vector(size_t(s.c_out), 402);
  const auto dy = random_vector(conv.y_size(), 403);

  const auto y = conv.forward(x, w, b.data());
  std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
  conv.backward_data(dy, w, dx, GradMode::Overwrite);
  conv.backward_filter(x, dy, dw, db.data(), GradMode::Overwrite);

  Conv2dShape one = s;
  one.n = 1;
  std::vector<double> ws(size_t(cpu::conv2d_workspace_elements(one)));
  std::vector<double> y1(y.size()), dx1(dx.size()), dw1(dw.size()), db1(db.size());
  const size_t in_image = x.size() / size_t(s.n), out_image = y.size() / size_t(s.n);
  for (size_t i = 0; i < size_t(s.n); ++i) {
    const GradMode mode = i == 0 ? GradMode::Overwrite : GradMode::Accumulate;
    cpu::conv2d_forward(one, x.data() + i * in_image, w.data(), b.data(),
                        y1.data() + i * out_image, ws.data());
    cpu::conv2d_backward_data(one, dy.data() + i * out_image, w.data(),
                              dx1.data() + i * in_image, GradMode::Overwrite, ws.data());
    cpu::conv2d_backward_filter(one, x.data() + i * in_image, dy.data() + i * out_image,
                                dw1.data(), db1.data(), mode, ws.data());
  }
  // Forward and dx only regroup columns of the same products: identical up to BLAS blocking.
  EXPECT_TRUE(all_close(y, y1, 1e-12, 1e-12));
  EXPECT_TRUE(all_close(dx, dx1, 1e-12, 1e-12));
  // dw and db sum 67 * 960 terms of magnitude <= 1 in different orders.
  EXPECT_TRUE(all_close(dw, dw1, 1e-11, 1e-10));
  EXPECT_TRUE(all_close(db, db1, 1e-11, 1e-10));
}

// Engines size the workspace once, for their largest batch, and run shorter batches in it. A
// shorter batch can even out into larger chunks than the full one (here the cap is about 50
// images: 128 runs as 43 + 43 + 42, 51 would run as one chunk of 51), so the size must follow
// the cap, not the full batch's chunking. Regression test for a heap overflow in evaluation.
TEST(Conv2d, WorkspaceSizedForTheLargestBatchFitsEverySmallerOne) {
  const Conv2dShape full = conv2d_shape(128, 3, 41, 41, 4, 3, 3, 1, 1, Padding::Valid);
  const size_t capacity = size_t(cpu::conv2d_workspace_elements(full));
  for (int64_t n : {1, 37, 50, 51, 52, 64, 100, 127}) {
    Conv2dShape s = full;
    s.n = n;
    ASSERT_LE(size_t(cpu::conv2d_workspace_elements(s)), capacity) << "batch " << n;
    Conv<float> conv(s);
    conv.workspace.assign(capacity + Conv<float>::kGuard, 0.0f);
    const auto x = cast<float>(random_vector(conv.x_size(), 500 + uint64_t(n)));
    const auto w = cast<float>(random_vector(conv.w_size(), 501));
    const auto dy = cast<float>(random_vector(conv.y_size(), 502));
    conv.forward(x, w, nullptr);
    std::vector<float> dx(x.size()), dw(w.size());
    conv.backward_data(dy, w, dx, GradMode::Overwrite);
    conv.backward_filter(x, dy, dw, nullptr, GradMode::Overwrite);
  }
}

}  // namespace
}  // namespace polytask::kernels
