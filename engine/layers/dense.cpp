// Dense over (features,) samples: y = x · wᵀ + b, w stored (units, features).
#include "engine/dispatch.h"
#include "engine/layers.h"
#include "kernels/dense.h"

namespace polytask::layers {

namespace {

class Dense final : public Layer {
 public:
  Dense(int64_t units, bool use_bias) : Layer("dense"), units_(units), use_bias_(use_bias) {
    if (units <= 0) fail("dense: units must be positive, got ", units);
  }

  Shape build(const std::vector<Shape>& in) override {
    expect_inputs(in, 1);
    if (in[0].rank() != 1)
      error(cat("expects a (features,) input, got ", in[0],
                in[0].rank() > 1 ? "; add a flatten layer before it" : ""));
    const int64_t features = in[0][0];
    if (!built()) {
      add_parameter("weight", {units_, features}, Init::GlorotUniform, features, units_);
      if (use_bias_) add_parameter("bias", {units_}, Init::Zeros);
    } else if (parameter(0).shape[1] != features) {
      error(cat("was built for ", parameter(0).shape[1], " input features, called on ", in[0]));
    }
    return {units_};
  }

  bool has_cuda_kernels() const override { return true; }

  void forward(const LayerCall& c) override {
    const kernels::DenseShape s{c.x[0].dim(0), c.x[0].dim(1), units_};
    dispatch(
        "dense forward", c.y,
        [&]<class T>() {
          kernels::cpu::dense_forward<T>(s, c.x[0].data<T>(), weight<T>(), bias<T>(), c.y.data<T>());
        },
        [&](auto stream) {
          kernels::cuda::dense_forward(s, c.x[0].data<float>(), weight<float>(), bias<float>(),
                                       c.y.data<float>(), stream, c.precision);
        });
  }

  void backward(const LayerCall& c) override {
    const kernels::DenseShape s{c.x[0].dim(0), c.x[0].dim(1), units_};
    dispatch(
        "dense backward", c.dy,
        [&]<class T>() {
          kernels::cpu::dense_backward_filter<T>(s, c.x[0].data<T>(), c.dy.data<T>(),
                                                 parameter(0).grad.data<T>(), bias_grad<T>(),
                                                 c.param_mode);
          if (c.dx[0].defined())
            kernels::cpu::dense_backward_data<T>(s, c.dy.data<T>(), weight<T>(),
                                                 c.dx[0].data<T>(), c.dx_mode[0]);
        },
        [&](auto stream) {
          kernels::cuda::dense_backward_filter(s, c.x[0].data<float>(), c.dy.data<float>(),
                                               parameter(0).grad.data<float>(),
                                               bias_grad<float>(), c.param_mode, stream,
                                               c.precision);
          if (c.dx[0].defined())
            kernels::cuda::dense_backward_data(s, c.dy.data<float>(), weight<float>(),
                                               c.dx[0].data<float>(), c.dx_mode[0], stream,
                                               c.precision);
        });
  }

 private:
  template <class T>
  const T* weight() const { return parameter(0).value.data<T>(); }
  template <class T>
  const T* bias() const { return use_bias_ ? parameter(1).value.data<T>() : nullptr; }
  template <class T>
  T* bias_grad() const { return use_bias_ ? parameter(1).grad.data<T>() : nullptr; }

  int64_t units_;
  bool use_bias_;
};

}  // namespace

std::shared_ptr<Layer> make_relu_layer(std::string name);

LayerRef dense(int64_t units, DenseOptions options) {
  auto layer = std::make_shared<Dense>(units, options.use_bias);
  if (!options.name.empty()) layer->set_name(options.name);
  return LayerRef(layer, options.activation == Activation::ReLU ? make_relu_layer("") : nullptr);
}

}  // namespace polytask::layers
