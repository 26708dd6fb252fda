//! The linear layer both towers are made of, its inference weight held the way its products
//! read it fastest.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::{thin_matmul, train_ops, transpose};

/// How a dense layer holds its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Training: the (out, in) variable itself (a copy would not follow optimiser updates).
    Train,
    /// Inference, transposed once to (in, out): gemm reads it in place. Fastest for hundreds
    /// of rows (an image's patches): at 197 rows 10-15 % faster than (out, in) here.
    InOut,
    /// Inference, as stored (out, in): up to `thin_matmul::MAX_ROWS` rows (one prompt) take the
    /// streaming dot products, more go to gemm, which at 50-80 rows (a few prompts) reads this
    /// layout 5-20 % faster than (in, out). Nothing to transpose at load.
    OutIn,
}

impl Layout {
    /// `Train` in training, else `inference`.
    pub(crate) fn pick(train: bool, inference: Layout) -> Layout {
        if train {
            Layout::Train
        } else {
            inference
        }
    }
}

/// A linear layer applied as one 2-D matmul over all leading dimensions. candle-nn's `Linear`
/// is not used because it broadcasts the weight over the batch, which makes its weight
/// gradient a per-sample tensor summed afterwards.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    /// (out, in), or (in, out) contiguous for `Layout::InOut`.
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
    layout: Layout,
}

impl Dense {
    /// `weight` is (out, in) as stored; at inference (`train` false) it is transposed once.
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>, train: bool) -> Result<Self> {
        Self::with_layout(weight, bias, Layout::pick(train, Layout::InOut))
    }

    /// `weight` is (out, in) as stored.
    pub(crate) fn with_layout(
        weight: Tensor,
        bias: Option<Tensor>,
        layout: Layout,
    ) -> Result<Self> {
        let weight = match layout {
            Layout::InOut => transpose::transposed(&weight)?,
            Layout::Train => weight,
            Layout::OutIn => weight.contiguous()?,
        };
        Ok(Self {
            weight,
            bias,
            layout,
        })
    }

    pub(crate) fn load(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        train: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (weight, bias) = Self::variables(in_dim, out_dim, bias, vb)?;
        Self::new(weight, bias, train)
    }

    /// With a bias, held as `layout`.
    pub(crate) fn load_as(
        in_dim: usize,
        out_dim: usize,
        layout: Layout,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (weight, bias) = Self::variables(in_dim, out_dim, true, vb)?;
        Self::with_layout(weight, bias, layout)
    }

    fn variables(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1. / (in_dim as f64).sqrt();
            let init = candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            };
            Some(vb.get_with_hints(out_dim, "bias", init)?)
        } else {
            None
        };
        Ok((weight, bias))
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let (last, lead) = dims
            .split_last()
            .ok_or_else(|| candle_core::Error::Msg("empty shape".into()))?;
        let rows: usize = lead.iter().product();
        let x = xs.reshape((rows, *last))?;
        let (mut out, out_dim) = match self.layout {
            Layout::InOut => (x.matmul(&self.weight)?, self.weight.dim(1)?),
            Layout::Train => (x.matmul(&self.weight.t()?)?, self.weight.dim(0)?),
            Layout::OutIn => {
                let out = match thin_matmul::thin_matmul_t(&x, &self.weight)? {
                    Some(out) => out,
                    None => x.matmul(&self.weight.t()?)?,
                };
                (out, self.weight.dim(0)?)
            }
        };
        if let Some(b) = &self.bias {
            out = match self.layout {
                Layout::Train => train_ops::add_bias(&out, b)?,
                Layout::InOut | Layout::OutIn => out.broadcast_add(b)?,
            };
        }
        let mut shape = lead.to_vec();
        shape.push(out_dim);
        out.reshape(shape)
    }
}
