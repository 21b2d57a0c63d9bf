//! Deterministic weight initialisation: a candle `VarBuilder` backend that creates each
//! variable from a seed and its name, so the same seed gives the same weights whatever the
//! order in which the model asks for them (candle's CPU RNG cannot be seeded).

use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarMap};

use crate::rng::{SplitMix64, hash_str, hash2};

/// Creates missing variables in a [`VarMap`] from `(seed, name)`.
pub struct SeededInit {
    pub varmap: VarMap,
    seed: u64,
    /// Serialises creation so two names never race on the map.
    lock: Mutex<()>,
}

impl SeededInit {
    pub fn new(varmap: VarMap, seed: u64) -> Self {
        SeededInit {
            varmap,
            seed,
            lock: Mutex::new(()),
        }
    }
}

/// The initial values of the variable `name` (n elements) for `seed`: the same numbers for
/// candle's model and the CPU engine ([`super::cpu`]), so both start from identical weights.
pub fn seeded_values(seed: u64, name: &str, n: usize, init: Init) -> Result<Vec<f32>> {
    let mut rng = SplitMix64::new(hash2(seed, hash_str(name)));
    Ok(match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => (0..n)
            .map(|_| (mean + stdev * rng.normal()) as f32)
            .collect(),
        Init::Uniform { lo, up } => (0..n)
            .map(|_| (lo + (up - lo) * rng.next_f64()) as f32)
            .collect(),
        Init::Kaiming { .. } => {
            candle_core::bail!("{name}: Kaiming init is not used by scalebook's models")
        }
    })
}

impl SimpleBackend for SeededInit {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let _guard = self.lock.lock().expect("init lock is never poisoned");
        let mut data = self.varmap.data().lock().expect("varmap lock");
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("{name}: shape {:?} requested, {:?} exists", s, var.shape())
            }
            return Ok(var.as_tensor().clone());
        }
        let values = seeded_values(self.seed, name, s.elem_count(), h)?;
        let tensor = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        data.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self.varmap.data().lock().expect("varmap lock");
        match data.get(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => candle_core::bail!("{name}: no such variable"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("varmap lock")
            .contains_key(name)
    }
}
