//! The Triton side of `shared-memory=system`: a pool of registered regions, one per request in
//! flight, each holding the input tensor and the outputs whose size is known in advance.
//!
//! A request leases a region ([`ShmPool::lease`]), writes its tensor there and names the region
//! in its input and output parameters instead of carrying bytes; the answer's outputs are read
//! back from the region ([`Lease::finish`]) and the region goes back to the pool. A region whose
//! request got no answer (timeout, broken stream) may still be written by Triton, so it is never
//! reused: it is unlinked at once and unregistered with the next lease. [`ShmPool::prepare`]
//! (at start) removes what killed processes left, locally and in Triton, and checks that Triton
//! can open a region of ours; [`ShmPool::close`] (at stop) unregisters every region.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use triton_endpoint::{Auth, Target};
use triton_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use triton_proto::inference::{
    InferParameter, ModelInferRequest, SystemSharedMemoryRegisterRequest,
    SystemSharedMemoryStatusRequest, SystemSharedMemoryUnregisterRequest, infer_parameter,
};

use super::region::{self as shm, Region};
use crate::{InferError, InputDesc, Outcome};
use triton_proto::dtype::size_of as dtype_size;

type Rpc = GrpcInferenceServiceClient<InterceptedService<Channel, Auth>>;

/// An output whose shape the model describes (from ModelMetadata + ModelConfig).
#[derive(Debug, Clone, PartialEq)]
pub struct OutSpec {
    pub name: String,
    pub dtype: String,
    /// The metadata shape: with a leading -1 for the batch when `batched`.
    pub shape: Vec<i64>,
    pub batched: bool,
}

/// Room for an output whose size the description does not fix: the input's size (an identity
/// or image-to-image model), at least 1 MiB (detections). An answer that needs more is sent
/// once more with that output as bytes, and the output stays bytes from then on.
const GUESS_MIN: usize = 1 << 20;
const ALIGN: usize = 64;
/// The most room one output gets in a region (the largest message a gRPC channel here carries
/// is 64 MiB; this leaves room for more, and none for a server-sent size of terabytes).
const MAX_ROOM: usize = 1 << 30;

impl OutSpec {
    /// Bytes this output takes for a request of batch `batch`, `None` when the shape is not fixed.
    fn bytes(&self, batch: i64) -> Option<usize> {
        let dims = if self.batched {
            self.shape.get(1..)?
        } else {
            &self.shape[..]
        };
        let mut n = dtype_size(&self.dtype)?;
        for &d in dims {
            n = n.checked_mul(usize::try_from(d).ok()?)?;
        }
        if self.batched {
            n = n.checked_mul(usize::try_from(batch).ok()?)?;
        }
        Some(n)
    }
}

/// Where a request's tensors lie in a region: the input at 0, then each output.
#[derive(Debug, Clone, PartialEq)]
struct Offsets {
    input: usize,
    /// (name, offset, room)
    outputs: Vec<(String, usize, usize)>,
}

impl Offsets {
    fn len(&self) -> usize {
        self.outputs
            .last()
            .map_or(self.input, |(_, off, room)| off + room)
    }
}

struct Slot {
    region: Region,
    offsets: Offsets,
    /// [`State::generation`] when registered.
    generation: u64,
}

#[derive(Default)]
struct State {
    free: Vec<Slot>,
    outputs: Vec<OutSpec>,
    /// Outputs that did not fit their guessed room: always sent as bytes.
    bytes_only: HashSet<String>,
    registered: HashSet<String>,
    /// Registered names whose region was dropped: to unregister.
    retired: Vec<String>,
    /// After [`ShmPool::close`]: no new region, none back to the pool.
    closed: bool,
    /// Bumped when Triton no longer knows our regions (it restarted): older ones are dropped.
    generation: u64,
}

pub struct ShmPool {
    target: Target,
    auth: Auth,
    state: Mutex<State>,
}

fn param(v: infer_parameter::ParameterChoice) -> InferParameter {
    InferParameter {
        parameter_choice: Some(v),
    }
}

/// The three parameters that point a tensor at a region.
fn point_at(
    params: &mut std::collections::HashMap<String, InferParameter>,
    region: &str,
    offset: usize,
    len: usize,
) {
    use infer_parameter::ParameterChoice::{Int64Param, StringParam};
    params.insert(
        "shared_memory_region".into(),
        param(StringParam(region.into())),
    );
    params.insert(
        "shared_memory_byte_size".into(),
        param(Int64Param(len as i64)),
    );
    params.insert(
        "shared_memory_offset".into(),
        param(Int64Param(offset as i64)),
    );
}

impl ShmPool {
    pub fn new(target: Target, auth: Auth) -> Arc<ShmPool> {
        Arc::new(ShmPool {
            target,
            auth,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn rpc(&self) -> Result<Rpc, InferError> {
        let ch = self.target.connect().await?;
        Ok(GrpcInferenceServiceClient::new(InterceptedService::new(
            ch,
            self.auth.clone(),
        )))
    }

    /// What a refusal by Triton means for this feature.
    fn refused(&self, what: &str, key: &str, s: &tonic::Status) -> InferError {
        let url = &self.target.url;
        InferError::SharedMemory(if s.code() == tonic::Code::Unimplemented {
            format!(
                "shared-memory=system: the server at {url} does not offer system shared memory ({what}: {}); set shared-memory=none",
                s.code()
            )
        } else {
            format!(
                "shared-memory=system: Triton at {url} could not {what} {key}: {}; it must run on this host and see this /dev/shm (same IPC namespace, and a user that may open files of this one); for a remote Triton set shared-memory=none",
                s.message()
            )
        })
    }

    /// Removes the regions of processes that died (in `/dev/shm` and in Triton's region
    /// manager), then checks with a small region that Triton can open ours. Returns the names
    /// removed. An error: Triton refused (remote host, no shared-memory extension) or is not
    /// reachable (the caller decides).
    pub async fn prepare(&self) -> Result<Vec<String>, InferError> {
        let mut removed = shm::remove_stale_local();
        let mut rpc = self.rpc().await?;
        let status = rpc
            .system_shared_memory_status(SystemSharedMemoryStatusRequest::default())
            .await
            .map_err(|s| self.refused("list shared memory", "regions", &s))?
            .into_inner();
        let deadline = tokio::time::Instant::now() + IN_USE_WAIT;
        for name in status.regions.into_keys().filter(|n| shm::is_stale(n)) {
            if unregister_when_free(&mut rpc, &name, deadline).await {
                removed.push(name);
            }
        }
        let probe = self.create(4096)?;
        self.register(&mut rpc, &probe).await?;
        self.unregister(&mut rpc, vec![probe.name().to_string()])
            .await;
        Ok(removed)
    }

    fn create(&self, len: usize) -> Result<Region, InferError> {
        let name = shm::new_name();
        Region::create(&name, len).map_err(|e| {
            InferError::SharedMemory(format!(
                "shared-memory=system: cannot create /dev/shm/{name} of {len} bytes: {e} (in a container, /dev/shm may be too small: --shm-size)"
            ))
        })
    }

    async fn register(&self, rpc: &mut Rpc, r: &Region) -> Result<(), InferError> {
        rpc.system_shared_memory_register(SystemSharedMemoryRegisterRequest {
            name: r.name().into(),
            key: r.key(),
            offset: 0,
            byte_size: r.len() as u64,
        })
        .await
        .map_err(|s| self.refused("open shared-memory region", &r.key(), &s))?;
        self.state().registered.insert(r.name().into());
        Ok(())
    }

    async fn unregister(&self, rpc: &mut Rpc, names: Vec<String>) {
        let deadline = tokio::time::Instant::now() + IN_USE_WAIT;
        for name in names {
            if unregister_when_free(rpc, &name, deadline).await {
                self.state().registered.remove(&name);
            }
        }
    }

    /// The outputs the model describes (their sizes decide which go through the region).
    pub fn set_outputs(&self, outputs: Vec<OutSpec>) {
        self.state().outputs = outputs;
    }

    fn offsets(&self, spec: &InputDesc, input: usize, requested: &[String]) -> Offsets {
        let st = self.state();
        let batch = spec.shape.first().copied().unwrap_or(1);
        let mut off = input.next_multiple_of(ALIGN);
        let mut outputs = Vec::new();
        for name in requested.iter().filter(|n| !st.bytes_only.contains(*n)) {
            let Some(o) = st.outputs.iter().find(|o| &o.name == name) else {
                continue;
            };
            if dtype_size(&o.dtype).is_none() {
                continue;
            }
            let room = o.bytes(batch).unwrap_or(input.max(GUESS_MIN));
            // A size the server's description states: one past MAX_ROOM (a shape of
            // [1, 1<<40]) is not given room in a region; that output comes back as bytes.
            let Some(end) = off.checked_add(room).filter(|_| room <= MAX_ROOM) else {
                continue;
            };
            outputs.push((name.clone(), off, room));
            off = end.next_multiple_of(ALIGN);
        }
        Offsets { input, outputs }
    }

    /// A region holding `data` for a request asking for `requested` outputs.
    pub async fn lease(
        self: &Arc<Self>,
        spec: &InputDesc,
        data: &[u8],
        requested: &[String],
    ) -> Result<Lease, InferError> {
        let offsets = self.offsets(spec, data.len(), requested);
        let stopped = || InferError::SharedMemory("shared memory: the element stopped".into());
        let (found, retired) = {
            let mut st = self.state();
            if st.closed {
                return Err(stopped());
            }
            let i = st.free.iter().position(|s| s.offsets == offsets);
            let found = i.map(|i| st.free.swap_remove(i));
            if found.is_none() {
                // The tensor or the outputs changed: regions of the old offsets are not needed.
                let old: Vec<Slot> = st.free.drain(..).collect();
                st.retired
                    .extend(old.iter().map(|s| s.region.name().to_string()));
            }
            (found, std::mem::take(&mut st.retired))
        };
        let slot = match found {
            Some(s) if retired.is_empty() => s,
            found => {
                let mut rpc = self.rpc().await?;
                self.unregister(&mut rpc, retired).await;
                match found {
                    Some(s) => s,
                    None => {
                        let region = self.create(offsets.len())?;
                        self.register(&mut rpc, &region).await?;
                        if self.state().closed {
                            // Stopped while registering: close() did not see this one.
                            self.unregister(&mut rpc, vec![region.name().into()]).await;
                            return Err(stopped());
                        }
                        let generation = self.state().generation;
                        Slot {
                            region,
                            offsets,
                            generation,
                        }
                    }
                }
            }
        };
        slot.region
            .write(0, data)
            .map_err(|e| InferError::SharedMemory(e.to_string()))?;
        Ok(Lease {
            pool: self.clone(),
            slot: Some(slot),
        })
    }

    /// Unregisters every region of this pool (at stop) and unlinks the free ones; regions still
    /// on loan are unlinked when their request ends.
    pub async fn close(&self) -> Result<(), InferError> {
        let names: Vec<String> = {
            let mut st = self.state();
            st.closed = true;
            st.free.clear();
            st.retired.clear();
            st.registered.iter().cloned().collect()
        };
        if names.is_empty() {
            return Ok(());
        }
        let mut rpc = self.rpc().await?;
        self.unregister(&mut rpc, names).await;
        let left = self.state().registered.len();
        if left > 0 {
            return Err(InferError::SharedMemory(format!(
                "{left} shared-memory regions could not be unregistered from Triton"
            )));
        }
        Ok(())
    }

    /// A region whose request got its answer: reused, unless the pool is closed (then it is
    /// unlinked here; close() unregistered it).
    fn give_back(&self, slot: Slot) {
        let mut st = self.state();
        if !st.closed && slot.generation == st.generation {
            st.free.push(slot);
        }
    }

    /// Triton answered that it does not know a region of ours: it restarted and forgot every
    /// registration. Drops them all (unlinked here, nothing to unregister); the next lease
    /// registers a new region.
    fn forget_registrations(&self) {
        let mut st = self.state();
        st.generation += 1;
        st.free.clear();
        st.registered.clear();
        st.retired.clear();
    }
}

/// How long unregistering waits for Triton to finish the requests still using a region, within
/// the time limits of start and stop (a process killed with requests queued at Triton leaves
/// regions that are in use for a while).
const IN_USE_WAIT: Duration = Duration::from_millis(2500);

/// Unregisters `name`; while Triton says the region is in use ("Cannot unregister shared memory
/// region ..."), tries again until `deadline`. True when it is gone.
async fn unregister_when_free(rpc: &mut Rpc, name: &str, deadline: tokio::time::Instant) -> bool {
    loop {
        let req = SystemSharedMemoryUnregisterRequest {
            name: name.to_string(),
        };
        match rpc.system_shared_memory_unregister(req).await {
            Ok(_) => return true,
            Err(s)
                if s.message().contains("Cannot unregister")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => return false,
        }
    }
}

/// One request's region. Dropped without [`Lease::finish`], the region is retired.
pub struct Lease {
    pool: Arc<ShmPool>,
    slot: Option<Slot>,
}

/// `output 'NAME'` of Triton's "should be at least N bytes" refusal.
fn too_small(msg: &str) -> Option<&str> {
    if !msg.contains("should be at least") {
        return None;
    }
    let rest = &msg[msg.find("for output '")? + "for output '".len()..];
    Some(&rest[..rest.find('\'')?])
}

impl Lease {
    /// Points the request's input and the outputs laid out in the region at it.
    pub fn fill(&self, req: &mut ModelInferRequest) {
        let Some(slot) = &self.slot else { return };
        let name = slot.region.name();
        for input in &mut req.inputs {
            point_at(&mut input.parameters, name, 0, slot.offsets.input);
        }
        req.raw_input_contents.clear();
        for out in &mut req.outputs {
            if let Some((_, off, room)) = slot.offsets.outputs.iter().find(|o| o.0 == out.name) {
                point_at(&mut out.parameters, name, *off, *room);
            }
        }
    }

    /// Reads the outputs that Triton wrote into the region and returns the region to the pool.
    /// An output that did not fit its room turns into [`InferError::Resend`] (it is asked for as
    /// bytes from now on).
    pub fn finish(mut self, answer: Outcome) -> Outcome {
        let slot = self.slot.take().expect("finished once");
        let result = match answer {
            Ok(mut out) => {
                for t in &mut out.outputs {
                    let Some((_, off, room)) = slot.offsets.outputs.iter().find(|o| o.0 == t.name)
                    else {
                        continue;
                    };
                    let n = t
                        .shape
                        .iter()
                        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
                    let len = n.and_then(|n| n.checked_mul(dtype_size(&t.dtype)?));
                    let data = len
                        .filter(|l| l <= room)
                        .and_then(|l| slot.region.read(*off, l).ok())
                        .ok_or_else(|| {
                            InferError::Protocol(format!(
                                "output {}: shape {:?} {} does not fit its {room} bytes of shared memory",
                                t.name, t.shape, t.dtype
                            ))
                        });
                    match data {
                        Ok(d) => t.data = d.into(),
                        Err(e) => {
                            self.pool.give_back(slot);
                            return Err(e);
                        }
                    }
                }
                Ok(out)
            }
            // The server's refusal (in-band on the stream, or a unary call's status).
            Err(e) if e.server_message().is_some() => {
                let msg = e.server_message().unwrap_or_default();
                let forgotten = msg.contains("Unable to find shared memory region");
                let small = too_small(msg).map(str::to_string);
                if forgotten {
                    self.pool.forget_registrations();
                    Err(InferError::Resend(Box::new(e)))
                } else if let Some(name) = small {
                    self.pool.state().bytes_only.insert(name);
                    Err(InferError::Resend(Box::new(e)))
                } else {
                    Err(e)
                }
            }
            Err(e) => {
                // No answer: Triton may still write into this region. Not reused.
                self.slot = Some(slot);
                return Err(e);
            }
        };
        self.pool.give_back(slot);
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool
                .state()
                .retired
                .push(slot.region.name().to_string());
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
