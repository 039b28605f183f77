//! The mock's system shared memory, as Triton has it: a registered region is opened and mapped
//! at registration; a request whose input names a region is read from it, and an output that
//! names a region is written there instead of into the response.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use tonic::Status;
use triton_proto::inference::infer_parameter::ParameterChoice;
use triton_proto::inference::model_infer_response::InferOutputTensor;
use triton_proto::inference::{InferParameter, ModelInferRequest};

use super::Shared;

/// One mapped region of a client.
struct Mapped {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain shared memory owned by this value; accessed under the registry's lock.
unsafe impl Send for Mapped {}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `register`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Where a tensor lies: region name, offset, byte size (the three request parameters).
pub(super) struct Place {
    pub region: String,
    pub offset: usize,
    pub len: usize,
}

impl Place {
    pub fn of(params: &HashMap<String, InferParameter>) -> Option<Place> {
        let get = |k: &str| params.get(k).and_then(|p| p.parameter_choice.clone());
        match (
            get("shared_memory_region"),
            get("shared_memory_offset"),
            get("shared_memory_byte_size"),
        ) {
            (
                Some(ParameterChoice::StringParam(region)),
                Some(ParameterChoice::Int64Param(offset)),
                Some(ParameterChoice::Int64Param(len)),
            ) => Some(Place {
                region,
                offset: usize::try_from(offset).ok()?,
                len: usize::try_from(len).ok()?,
            }),
            _ => None,
        }
    }
}

/// The regions registered with the mock, by name, and how many registrations there were.
#[derive(Default)]
pub(super) struct Registry(
    Mutex<HashMap<String, Mapped>>,
    std::sync::atomic::AtomicUsize,
    /// Unregistrations still to refuse as "in use" (`usize::MAX`: all).
    std::sync::atomic::AtomicUsize,
);

impl Registry {
    /// Opens and maps `key` (`/name`) as Triton does when a client registers it.
    pub fn register(&self, name: &str, key: &str, len: usize) -> Result<(), Status> {
        let c = CString::new(key).map_err(|_| Status::invalid_argument("key"))?;
        // SAFETY: plain libc calls; the descriptor is closed on every path, the mapping is
        // owned by the registry entry.
        let ptr = unsafe {
            let fd = libc::shm_open(c.as_ptr(), libc::O_RDWR, 0);
            if fd < 0 {
                return Err(Status::internal(format!(
                    "Unable to open shared memory region: '{key}'"
                )));
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            libc::close(fd);
            if p == libc::MAP_FAILED {
                return Err(Status::internal("mmap failed"));
            }
            p.cast::<u8>()
        };
        self.0
            .lock()
            .unwrap()
            .insert(name.into(), Mapped { ptr, len });
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Unregisters `name`, unless a refusal is scripted: then answers as Triton does for a
    /// region that requests still use.
    pub fn unregister(&self, name: &str) -> Result<(), Status> {
        use Ordering::SeqCst;
        let refuse = self
            .2
            .fetch_update(SeqCst, SeqCst, |n| match n {
                0 => None,
                usize::MAX => Some(n),
                n => Some(n - 1),
            })
            .is_ok();
        if refuse {
            return Err(Status::internal(format!(
                "Cannot unregister shared memory region '{name}', it is currently in use."
            )));
        }
        self.0.lock().unwrap().remove(name);
        Ok(())
    }

    /// Registrations so far.
    pub fn registrations(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }

    /// Forgets every region, as a restarted Triton does.
    pub fn forget(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }

    /// The bytes at `p`; the error is Triton's words for a region it does not know.
    pub fn read(&self, p: &Place) -> Result<Vec<u8>, String> {
        let map = self.0.lock().unwrap();
        let m = self.find(&map, p)?;
        // SAFETY: in bounds (checked by `find`); the mapping lives while the lock is held.
        Ok(unsafe { std::slice::from_raw_parts(m.ptr.add(p.offset), p.len) }.to_vec())
    }

    /// Writes output `name`'s `data` at `p`; fails like Triton when it does not fit.
    pub fn write(&self, name: &str, p: &Place, data: &[u8]) -> Result<(), String> {
        if data.len() > p.len {
            return Err(format!(
                "shared memory size specified with the request for output '{name}' should be at least {} bytes",
                data.len()
            ));
        }
        let map = self.0.lock().unwrap();
        let m = self.find(&map, p)?;
        // SAFETY: in bounds (checked); the source is a separate allocation.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), m.ptr.add(p.offset), data.len()) };
        Ok(())
    }

    fn find<'a>(&self, map: &'a HashMap<String, Mapped>, p: &Place) -> Result<&'a Mapped, String> {
        let m = map
            .get(&p.region)
            .ok_or_else(|| format!("Unable to find shared memory region: '{}'", p.region))?;
        if p.offset.checked_add(p.len).is_none_or(|end| end > m.len) {
            return Err(format!("region '{}': out of bounds", p.region));
        }
        Ok(m)
    }
}

impl super::MockKserve {
    /// Refuses the next `n` shared-memory unregistrations as "in use" (`usize::MAX`: every one),
    /// as Triton does while requests still use a region.
    pub fn refuse_unregisters(&self, n: usize) {
        self.shared.regions.2.store(n, Ordering::SeqCst);
    }
}

/// Where a request's tensors live: in the request, or in the regions it names.
impl super::Service {
    /// The request's input bytes: from its shared-memory region when it names one.
    pub(super) fn input(
        shared: &Shared,
        req: &ModelInferRequest,
    ) -> Result<Option<bytes::Bytes>, String> {
        match req.inputs.first().and_then(|i| Place::of(&i.parameters)) {
            Some(p) => {
                let data = shared.regions.read(&p)?;
                shared.counters.shm_inputs.fetch_add(1, Ordering::SeqCst);
                Ok(Some(data.into()))
            }
            None => Ok(req.raw_input_contents.first().cloned()),
        }
    }

    /// The answer's one output: in the response, or written to the region the request named
    /// for it (then the response carries its description only, as Triton's does).
    #[allow(clippy::type_complexity)]
    pub(super) fn output(
        shared: &Shared,
        req: &ModelInferRequest,
        tensor: InferOutputTensor,
        data: bytes::Bytes,
    ) -> Result<(Vec<InferOutputTensor>, Vec<bytes::Bytes>), String> {
        let place = req
            .outputs
            .iter()
            .find(|o| o.name == tensor.name)
            .and_then(|o| Place::of(&o.parameters));
        match place {
            Some(p) => {
                shared.regions.write(&tensor.name, &p, &data)?;
                Ok((vec![tensor], vec![]))
            }
            None => Ok((vec![tensor], vec![data])),
        }
    }
}
