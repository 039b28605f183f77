//! What a model says about itself: its input name, its outputs and their shapes, and its class
//! names — from the proxy's `ModelInfo`, or KServe v2 `ModelMetadata` plus Triton's
//! `ModelConfig` where the server has it.

use triton_proto::inference::{ModelConfigRequest, ModelMetadataRequest};
use triton_proto::multimodal::ModelInfoRequest;
use triton_proto::multimodal::multi_modal_client::MultiModalClient;

use crate::shm::OutSpec;
use crate::transport::unary::{DEFAULT_SERVICE, Kserve};
use crate::{Client, InferError, MAX_MESSAGE, Transport, labels};

/// A model's description.
#[derive(Debug, Clone, Default)]
pub struct ModelDesc {
    pub input_name: Option<String>,
    /// The first input's datatype as the server names it (`FP32`, `UINT8`, ...).
    pub input_dtype: Option<String>,
    /// Output names and shapes (`-1`: any size).
    pub outputs: Vec<(String, Vec<i64>)>,
    /// From the model's `class_names` parameter, where it has one.
    pub class_names: Option<Vec<String>>,
    /// The largest batch the model takes (its configuration's `max_batch_size`), where the server
    /// says and the model batches at all.
    pub max_batch_size: Option<u32>,
}

/// `max_batch_size` as a limit: 0 (a model without a batch dimension) and nonsense are none.
fn batch_limit(max_batch_size: i32) -> Option<u32> {
    u32::try_from(max_batch_size).ok().filter(|&n| n > 0)
}

impl Client {
    /// The model's description. With shared memory it also tells the pool the outputs' sizes.
    pub async fn model_desc(&self) -> Result<ModelDesc, InferError> {
        let ch = self.channel().await?;
        let c = self.config();
        let tls = c.target.tls_enabled();
        if c.transport == Transport::Proxy {
            let info = MultiModalClient::new(ch)
                .model_info(ModelInfoRequest {
                    model: c.model.clone(),
                    version: c.model_version.clone(),
                })
                .await
                .map_err(|s| InferError::status(&s, tls))?
                .into_inner();
            return Ok(ModelDesc {
                input_name: info.inputs.first().map(|i| i.name.clone()),
                input_dtype: info.inputs.first().map(|i| i.datatype.clone()),
                outputs: info
                    .outputs
                    .into_iter()
                    .map(|o| (o.name, o.shape))
                    .collect(),
                class_names: info.parameters.get("class_names").map(|s| labels::parse(s)),
                max_batch_size: batch_limit(info.max_batch_size),
            });
        }
        // Triton's own service name for its stream; ModelConfig (Triton's extension) only where
        // the server has it.
        let service = match c.transport {
            Transport::KserveUnary => c.kserve_service.as_str(),
            _ => DEFAULT_SERVICE,
        };
        let k = Kserve::new(ch, service, MAX_MESSAGE);
        let meta = k
            .model_metadata(tonic::Request::new(ModelMetadataRequest {
                name: c.model.clone(),
                version: c.model_version.clone(),
            }))
            .await
            .map_err(|s| InferError::status(&s, tls))?;
        let cfg = k
            .model_config(tonic::Request::new(ModelConfigRequest {
                name: c.model.clone(),
                version: c.model_version.clone(),
            }))
            .await
            .ok()
            .and_then(|r| r.config);
        if let Some(pool) = &c.shm {
            let batched = cfg.as_ref().is_some_and(|c| c.max_batch_size > 0);
            pool.set_outputs(
                meta.outputs
                    .iter()
                    .map(|o| OutSpec {
                        name: o.name.clone(),
                        dtype: o.datatype.clone(),
                        shape: o.shape.clone(),
                        batched,
                    })
                    .collect(),
            );
        }
        Ok(ModelDesc {
            input_name: meta.inputs.first().map(|i| i.name.clone()),
            input_dtype: meta.inputs.first().map(|i| i.datatype.clone()),
            outputs: meta
                .outputs
                .into_iter()
                .map(|o| (o.name, o.shape))
                .collect(),
            max_batch_size: cfg.as_ref().and_then(|c| batch_limit(c.max_batch_size)),
            class_names: cfg.and_then(|c| {
                c.parameters
                    .get("class_names")
                    .map(|p| labels::parse(&p.string_value))
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::batch_limit;

    #[test]
    fn only_a_positive_max_batch_size_is_a_limit() {
        assert_eq!(batch_limit(8), Some(8));
        assert_eq!(batch_limit(1), Some(1));
        assert_eq!(batch_limit(0), None);
        assert_eq!(batch_limit(-1), None);
    }
}
