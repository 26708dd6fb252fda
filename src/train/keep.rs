//! Token dropping for training: which patches of each image a step keeps (every patch on an
//! object before any background patch), and the patch numbers of the targets renumbered to match.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::ground::Target;
use crate::world::{geometry, Scene};

/// The patches each image of a batch keeps, the same number for every image, so the kept tokens
/// still stack into one (B, 1 + K, D) tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Per image, the kept patch numbers (row-major in the full grid), ascending.
    pub patches: Vec<Vec<usize>>,
    /// Patches per image in the full grid.
    pub per_image: usize,
}

impl Kept {
    /// Keeps `keep` of each scene's `grid` × `grid` patches: those on an object (grown by half a
    /// patch, as the grounding targets) first, at random among them where there are more, then
    /// background patches at random. `None` when `keep` leaves nothing out.
    pub fn draw(scenes: &[Scene], grid: usize, keep: usize, rng: &mut ChaCha8Rng) -> Option<Self> {
        let per_image = grid * grid;
        if keep == 0 || keep >= per_image {
            return None;
        }
        let patches = scenes
            .iter()
            .map(|scene| {
                let mut on = vec![false; per_image];
                for o in &scene.objects {
                    for p in geometry::patches_on(o, grid) {
                        on[p] = true;
                    }
                }
                let (mut objects, mut background): (Vec<usize>, Vec<usize>) =
                    (0..per_image).partition(|&p| on[p]);
                objects.shuffle(rng);
                background.shuffle(rng);
                let mut kept: Vec<usize> =
                    objects.into_iter().chain(background).take(keep).collect();
                kept.sort_unstable();
                kept
            })
            .collect();
        Some(Self { patches, per_image })
    }

    /// Patches kept per image.
    pub fn keep(&self) -> usize {
        self.patches.first().map_or(0, Vec::len)
    }

    /// The rows of the (B · (1 + patches), D) embedded tokens to keep: each image's class token,
    /// then its kept patches.
    pub fn rows(&self) -> Vec<u32> {
        let stride = 1 + self.per_image;
        (self.patches.iter().enumerate())
            .flat_map(|(i, kept)| {
                let first = i * stride;
                std::iter::once(first).chain(kept.iter().map(move |p| first + 1 + p))
            })
            .map(|r| r as u32)
            .collect()
    }

    /// Where patch `patch` of image `image` stands among that image's kept patches.
    fn position(&self, image: usize, patch: usize) -> Option<usize> {
        self.patches.get(image)?.binary_search(&patch).ok()
    }

    /// Grounding targets (image, target) renumbered to the kept patches; a target none of whose
    /// patches is kept is dropped.
    pub fn targets(&self, ground: Vec<(usize, Target)>) -> Vec<(usize, Target)> {
        ground
            .into_iter()
            .filter_map(|(i, t)| {
                let patches: Vec<usize> = t
                    .patches
                    .iter()
                    .filter_map(|&p| self.position(i, p))
                    .collect();
                (!patches.is_empty()).then_some((
                    i,
                    Target {
                        token: t.token,
                        patches,
                    },
                ))
            })
            .collect()
    }

    /// Dense labels (image · patches + patch, label) renumbered to (image · kept + position);
    /// labels on patches left out are dropped.
    pub fn labels(&self, labels: &[(u32, u32)]) -> Vec<(u32, u32)> {
        let keep = self.keep();
        labels
            .iter()
            .filter_map(|&(at, label)| {
                let (image, patch) = (at as usize / self.per_image, at as usize % self.per_image);
                let position = self.position(image, patch)?;
                Some(((image * keep + position) as u32, label))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{self, Split};
    use rand::SeedableRng;

    fn scenes(n: u64) -> Vec<Scene> {
        (0..n).map(|i| world::scene(5, Split::Train, i)).collect()
    }

    #[test]
    fn object_patches_come_first_and_every_image_keeps_as_many() {
        let scenes = scenes(40);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let kept = Kept::draw(&scenes, 14, 48, &mut rng).unwrap();
        let mut whole_objects = 0;
        for (scene, patches) in scenes.iter().zip(&kept.patches) {
            assert_eq!(patches.len(), 48);
            assert!(patches.windows(2).all(|w| w[0] < w[1]), "{patches:?}");
            assert!(patches.iter().all(|&p| p < 196));
            let on: Vec<usize> = (scene.objects.iter())
                .flat_map(|o| geometry::patches_on(o, 14))
                .collect();
            let kept_on = on.iter().filter(|p| patches.contains(p)).count();
            if on.len() <= 48 {
                // With room for them all, no object patch is left for a background one.
                assert_eq!(kept_on, on.len());
                whole_objects += 1;
            } else {
                assert!(patches.iter().all(|p| on.contains(p)));
            }
        }
        assert!(whole_objects > 20, "{whole_objects}");
        // Keeping everything, or asking for nothing, is no dropping at all.
        assert_eq!(Kept::draw(&scenes, 14, 196, &mut rng), None);
        assert_eq!(Kept::draw(&scenes, 14, 0, &mut rng), None);
    }

    #[test]
    fn rows_and_renumbered_targets_point_at_the_same_patches() {
        let kept = Kept {
            patches: vec![vec![0, 5, 7], vec![1, 2, 8]],
            per_image: 9,
        };
        assert_eq!(kept.rows(), vec![0, 1, 6, 8, 10, 12, 13, 19]);
        let ground = vec![
            (
                0,
                Target {
                    token: 2,
                    patches: vec![4, 5, 7],
                },
            ),
            (
                1,
                Target {
                    token: 3,
                    patches: vec![0, 3],
                },
            ),
            (
                1,
                Target {
                    token: 4,
                    patches: vec![8],
                },
            ),
        ];
        assert_eq!(
            kept.targets(ground),
            vec![
                (
                    0,
                    Target {
                        token: 2,
                        patches: vec![1, 2]
                    }
                ),
                (
                    1,
                    Target {
                        token: 4,
                        patches: vec![2]
                    }
                ),
            ]
        );
        // Image 1's patch 2 is its second kept one: row 1 · 3 + 1; image 0's patch 4 is dropped.
        assert_eq!(
            kept.labels(&[(4, 0), (11, 3), (9 + 8, 1)]),
            vec![(4, 3), (5, 1)]
        );
    }

    #[test]
    fn a_kept_patch_carries_its_own_position_through_the_tower() {
        use crate::clip::Clip;
        use candle_core::{DType, Device, Tensor};
        use candle_nn::{VarBuilder, VarMap};
        let mut config = crate::train::clip::default_config();
        config.vision.image_size = 64;
        config.vision.num_hidden_layers = 1;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = Clip::new(&config, true, vb).unwrap();
        let pixels = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu).unwrap();
        let full = model
            .image_tokens(&pixels)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        // Every patch kept, in reverse order: attention does not care about order, so each
        // output row must be the full pass's row of the same patch.
        let kept = Kept {
            patches: vec![(0..16).rev().collect(), (0..16).rev().collect()],
            per_image: 16,
        };
        let rows = Tensor::new(kept.rows(), &Device::Cpu).unwrap();
        let out = model
            .image_tokens_kept(&pixels, &rows)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        // Gradients too: a weighted sum of the kept pass's rows and the same weights on the
        // full pass's rows give the embeddings the same gradients.
        let mix = Tensor::randn(0f32, 1.0, (2, 17, 128), &Device::Cpu).unwrap();
        let order: Vec<u32> = std::iter::once(0).chain((1..17).rev()).collect();
        let order = Tensor::new(order, &Device::Cpu).unwrap();
        let mixed_back = mix.index_select(&order, 1).unwrap();
        let kept_loss = (model.image_tokens_kept(&pixels, &rows).unwrap() * &mix)
            .unwrap()
            .sum_all()
            .unwrap();
        let full_loss = (model.image_tokens(&pixels).unwrap() * &mixed_back)
            .unwrap()
            .sum_all()
            .unwrap();
        let (kept_grads, full_grads) =
            (kept_loss.backward().unwrap(), full_loss.backward().unwrap());
        for name in [
            "patch_embedding.weight",
            "class_embedding",
            "position_embedding.weight",
        ] {
            let data = varmap.data().lock().unwrap();
            let var = &data[&format!("vision_model.embeddings.{name}")];
            let (a, b) = (kept_grads.get(var).unwrap(), full_grads.get(var).unwrap());
            let scale = b
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                crate::clip::max_diff(a, b) < 1e-4 * scale.max(1.0),
                "{name}"
            );
        }
        for image in 0..2 {
            let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
            assert!(close(&out[image][0], &full[image][0]), "class token");
            for (at, &patch) in kept.patches[image].iter().enumerate() {
                assert!(
                    close(&out[image][1 + at], &full[image][1 + patch]),
                    "patch {patch}"
                );
            }
        }
    }
}
