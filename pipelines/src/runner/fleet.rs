//! `triton-video --cameras FILE`: every camera of a cameras file as its own pipeline in one
//! process, started, stopped and restarted one at a time so that the others never notice.
//!
//! - An edit of the file (checked every second) or SIGHUP: cameras that left it are stopped
//!   gracefully (EOS, files finished), new ones started, changed ones restarted.
//! - A camera whose pipeline fails is started again after [`RETRY`]; one that gave up
//!   (`give_up_secs`) or whose input ended (a file) stays stopped until its entry changes.
//! - SIGINT/SIGTERM: every camera is stopped gracefully, then the run ends with 0.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use triton_endpoint::redact::scrub;

use super::args::Args;
use super::cameras::{self, Camera, counting_rules};
use super::events::Events;
use super::metrics::{Board, CameraState, Phase};
use super::{api, keep, launch, preflight, report, signals, stages};

/// Wait before starting a failed camera's pipeline again.
const RETRY: Duration = Duration::from_secs(5);
/// How long a stopping camera may take to finish its files before it is torn down.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the cameras file is read for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

fn say(msg: impl std::fmt::Display) {
    report::say(format_args!("triton-video: {msg}"));
}

/// One started pipeline.
struct Running {
    spec: Camera,
    generation: u64,
    pipeline: gst::Pipeline,
    state: Arc<CameraState>,
    /// Set when an EOS was sent to stop it: tear it down after this instant at the latest.
    stopping: Option<Instant>,
    /// The camera gave up (or the input ended): do not start it again for the same entry.
    finished: bool,
}

/// A bus message of one camera's pipeline.
type Note = (String, u64, gst::Message);

struct Fleet<'a> {
    base: &'a Args,
    board: Board,
    wanted: BTreeMap<String, Camera>,
    running: BTreeMap<String, Running>,
    /// Entries that ended on their own (gave up, input ended): not started again unless changed.
    done: BTreeMap<String, Camera>,
    retry_at: BTreeMap<String, Instant>,
    /// Cameras started in this run: a new start sets their earlier files aside ([`keep`]).
    started: std::collections::BTreeSet<String>,
    generation: u64,
    tx: mpsc::Sender<Note>,
    /// The run's event stream (`GET /api/events`).
    events: Arc<Events>,
}

impl Fleet<'_> {
    fn state(&self, name: &str) -> Arc<CameraState> {
        self.board
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| {
                // A camera new to the run: told as starting (its state's default).
                self.events.state(name, Phase::Starting, None);
                Arc::new(CameraState::watched(name, self.events.clone()))
            })
            .clone()
    }

    fn start(&mut self, spec: &Camera) -> Result<(), String> {
        let a = spec.args(self.base);
        std::fs::create_dir_all(&a.results_dir)
            .map_err(|e| format!("cannot create {}: {e}", a.results_dir))?;
        let recording = launch::recording_name(&spec.uri, &a.encoder);
        if self.started.contains(&spec.name) {
            let names: Vec<&str> = std::iter::once("frame_counts.jsonl")
                .chain((!recording.is_empty()).then_some(recording))
                .collect();
            let kept = keep::set_aside(Path::new(&a.results_dir), &names)
                .map_err(|e| format!("cannot keep the earlier files in {}: {e}", a.results_dir))?;
            if !kept.is_empty() {
                let kept: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
                say(format_args!(
                    "camera {}: the earlier pipeline's files kept as {}",
                    spec.name,
                    kept.join(", ")
                ));
            }
        }
        let (pipeline, _) = launch::build(&a, &spec.uri)?;
        let state = self.state(&spec.name);
        state.set_phase(Phase::Starting, None);
        state.stats.lock().unwrap().recording = recording;
        let src = pipeline
            .by_name("infer")
            .and_then(|e| e.static_pad("src"))
            .ok_or("no infer.src")?;
        let st = state.clone();
        report::on_frame(&src, move |buf, w, h, _| {
            let result = st.stats.lock().unwrap().count(buf, w, h);
            st.tick(Instant::now());
            stages::observe_result(&st.stages, result.as_ref());
        });
        stages::attach(
            &pipeline,
            &state.stages,
            gsttriton::camera::is_live(&spec.uri),
        );
        if let Some(pad) = pipeline.by_name("count").and_then(|e| e.static_pad("src")) {
            let st = state.clone();
            report::on_frame(&pad, move |buf, _, _, _| {
                if let Some(counts) = gsttriton::meta::count_meta(buf) {
                    *st.counts.lock().unwrap() = Some(report::LastCounts {
                        frame: gsttriton::meta::result_meta(buf).map(|r| r.frame),
                        pts_ns: buf.pts().map(|t| t.nseconds()),
                        counts,
                    });
                }
            });
        }
        self.generation += 1;
        let (tx, name, generation) = (self.tx.clone(), spec.name.clone(), self.generation);
        pipeline
            .bus()
            .ok_or("no bus")?
            .set_sync_handler(move |_, msg| {
                let _ = tx.send((name.clone(), generation, msg.clone()));
                gst::BusSyncReply::Drop
            });
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the pipeline: {e}"));
        }
        self.started.insert(spec.name.clone());
        say(format_args!(
            "camera {}: started ({} in {})",
            spec.name,
            gsttriton::camera::redacted(&spec.uri),
            a.results_dir
        ));
        self.running.insert(
            spec.name.clone(),
            Running {
                spec: spec.clone(),
                generation: self.generation,
                pipeline,
                state,
                stopping: None,
                finished: false,
            },
        );
        Ok(())
    }

    /// Sets the cameras wanted: each has its entry on the board (its status shows from now on,
    /// `starting` until its pipeline runs); a camera that left is dropped from the board once it
    /// has stopped.
    fn want(&mut self, cams: BTreeMap<String, Camera>) {
        self.wanted = cams;
        for c in self.wanted.values() {
            *self.state(&c.name).spec.lock().unwrap() = Some(c.clone());
        }
        let mut board = self.board.lock().unwrap();
        board.retain(|name, st| {
            if self.wanted.contains_key(name) {
                return true;
            }
            *st.spec.lock().unwrap() = None;
            let keep = self.running.contains_key(name);
            if !keep {
                self.events.removed(name);
            }
            keep
        });
    }

    /// Applies a change that needs no restart ([`Camera::changes_live_to`]) to the running
    /// pipeline: `tritoninfer`'s `conf-threshold`, the `videorate`'s `max-rate`, `detcount`'s
    /// `lines` and `zones`.
    fn apply_live(base: &Args, name: &str, r: &mut Running, new: &Camera) {
        let a = new.args(base);
        if let Some(infer) = r.pipeline.by_name("infer") {
            infer.set_property("conf-threshold", a.conf_thres);
        }
        if let (Some(cap), Some(fps)) = (r.pipeline.by_name("fpscap"), a.fps_cap) {
            cap.set_property("max-rate", fps.round().max(1.0) as i32);
        }
        let rules = (a.lines.unwrap_or_default(), a.zones.unwrap_or_default());
        if let Some(count) = r.pipeline.by_name("count") {
            let now: (Option<String>, Option<String>) =
                (count.property("lines"), count.property("zones"));
            let now = (now.0.unwrap_or_default(), now.1.unwrap_or_default());
            if now != rules {
                // One property at a time: the order whose step in between is valid rules too
                // (detcount refuses invalid ones, keeping the rules in force).
                let mut steps = [("zones", &rules.1), ("lines", &rules.0)];
                if !counting_rules(&now.0, &rules.1).is_ok_and(|r| !r.is_empty()) {
                    steps.reverse();
                }
                for (prop, text) in steps {
                    count.set_property(prop, text.as_str());
                }
            }
        }
        say(format_args!(
            "camera {name}: conf_thres {}, fps_cap {}, lines {:?}, zones {:?} applied without a restart",
            a.conf_thres,
            a.fps_cap.map_or("none".into(), |f| f.to_string()),
            rules.0,
            rules.1
        ));
        r.spec = new.clone();
    }

    /// Asks a camera to finish: EOS from its source, so its files are completed.
    fn begin_stop(r: &mut Running) {
        if r.stopping.is_none() {
            r.stopping = Some(Instant::now() + STOP_GRACE);
            r.pipeline.send_event(gst::event::Eos::new());
        }
    }

    /// Tears a camera's pipeline down and forgets it; its numbers stay while it is wanted.
    fn remove(&mut self, name: &str) {
        if let Some(r) = self.running.remove(name) {
            let _ = r.pipeline.set_state(gst::State::Null);
            r.state.up.store(false, Ordering::SeqCst);
            if r.finished && self.wanted.get(name) == Some(&r.spec) {
                self.done.insert(name.to_string(), r.spec.clone());
            }
            let s = r.state.stats.lock().unwrap();
            say(format_args!(
                "camera {name}: stopped after {} frames ({} ok, {} errors, {} no-signal)",
                s.frames, s.ok, s.errors, s.no_signal
            ));
        }
        if !self.wanted.contains_key(name) {
            if self.board.lock().unwrap().remove(name).is_some() {
                self.events.removed(name);
            }
            self.done.remove(name);
        }
    }

    /// Brings the running cameras in line with the wanted ones.
    fn reconcile(&mut self) {
        let now = Instant::now();
        for (name, r) in self.running.iter_mut() {
            match self.wanted.get(name) {
                Some(w) if *w == r.spec => {}
                Some(w) if r.stopping.is_none() && r.spec.changes_live_to(w) => {
                    Self::apply_live(self.base, name, r, w)
                }
                _ => Self::begin_stop(r),
            }
        }
        self.done
            .retain(|name, spec| self.wanted.get(name) == Some(spec));
        let start: Vec<Camera> = self
            .wanted
            .values()
            .filter(|c| !self.running.contains_key(&c.name) && !self.done.contains_key(&c.name))
            .filter(|c| self.retry_at.get(&c.name).is_none_or(|t| *t <= now))
            .cloned()
            .collect();
        for spec in start {
            self.retry_at.remove(&spec.name);
            if let Err(e) = self.start(&spec) {
                let st = self.state(&spec.name);
                st.restarts.fetch_add(1, Ordering::SeqCst);
                st.set_phase(Phase::Failed, Some(e.clone()));
                say(format_args!(
                    "camera {}: {e}; trying again in {} s",
                    spec.name,
                    RETRY.as_secs()
                ));
                self.retry_at.insert(spec.name.clone(), now + RETRY);
            }
        }
        let late: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| r.stopping.is_some_and(|t| t <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in late {
            say(format_args!(
                "camera {name}: did not finish its files within {} s; stopped anyway",
                STOP_GRACE.as_secs()
            ));
            self.remove(&name);
        }
    }

    fn handle(&mut self, (name, generation, msg): Note) {
        let Some(r) = self
            .running
            .get_mut(&name)
            .filter(|r| r.generation == generation)
        else {
            return;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => {
                if r.stopping.is_none() {
                    // The input ended on its own (a file): it is done.
                    r.finished = true;
                    r.state.set_phase(Phase::Stopped, None);
                }
                self.remove(&name);
            }
            gst::MessageView::Error(e) if msg.src().is_some_and(report::is_camera) => {
                // The camera stayed away past give_up_secs: finish its files, keep it stopped.
                say(format_args!("camera {name}: {}", e.error()));
                r.state
                    .set_phase(Phase::GivenUp, Some(scrub(&e.error().to_string())));
                r.finished = true;
                r.state.up.store(false, Ordering::SeqCst);
                if let Some(pad) = r
                    .pipeline
                    .by_name("letterbox")
                    .and_then(|l| l.static_pad("sink"))
                {
                    pad.send_event(gst::event::Eos::new());
                }
                r.stopping.get_or_insert(Instant::now() + STOP_GRACE);
            }
            gst::MessageView::Error(e) => {
                say(format_args!(
                    "camera {name}: {} ({}); starting it again in {} s",
                    e.error(),
                    e.debug().unwrap_or_default(),
                    RETRY.as_secs()
                ));
                r.state.restarts.fetch_add(1, Ordering::SeqCst);
                r.state
                    .set_phase(Phase::Failed, Some(scrub(&e.error().to_string())));
                self.retry_at.insert(name.clone(), Instant::now() + RETRY);
                self.remove(&name);
            }
            gst::MessageView::Warning(w) => {
                say(format_args!("camera {name}: warning: {}", w.error()))
            }
            gst::MessageView::Element(el) => {
                let Some(s) = el
                    .structure()
                    .filter(|s| s.name() == gsttriton::camera::MESSAGE)
                else {
                    return;
                };
                match s.get::<&str>("state").unwrap_or("") {
                    "up" | "back" => {
                        r.state.up.store(true, Ordering::SeqCst);
                        r.state.set_phase(Phase::Streaming, None);
                    }
                    "lost" => {
                        r.state.up.store(false, Ordering::SeqCst);
                        r.state.set_phase(Phase::NoSignal, None);
                        r.state.outages.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                say(format_args!(
                    "camera {name}: {}",
                    s.get::<&str>("state").unwrap_or("?")
                ));
            }
            gst::MessageView::StateChanged(sc)
                if sc.current() == gst::State::Playing
                    && msg.src() == Some(r.pipeline.upcast_ref())
                    && !gsttriton::camera::is_live(&r.spec.uri) =>
            {
                r.state.up.store(true, Ordering::SeqCst);
                r.state.set_phase(Phase::Streaming, None);
            }
            _ => {}
        }
    }
}

fn read(file: &str, base: &Args) -> Result<(String, BTreeMap<String, Camera>), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("CAMERAS_FILE: {file}: {e}"))?;
    let cams = parse_checked(&text, base).map_err(|e| format!("CAMERAS_FILE: {file}: {e}"))?;
    Ok((text, cams))
}

/// The cameras of a file's text, each with an encoder that can make its recording.
fn parse_checked(text: &str, base: &Args) -> Result<BTreeMap<String, Camera>, String> {
    let cams = cameras::parse(text)?;
    check_encoders(base, &cams)?;
    Ok(cams)
}

/// Every camera's encoder can make its recording (as the file's other fields, refused before
/// anything starts rather than failing at each start).
fn check_encoders(base: &Args, cams: &BTreeMap<String, Camera>) -> Result<(), String> {
    for c in cams.values() {
        launch::check_encoder(&c.args(base), &c.uri)
            .map_err(|e| format!("camera {:?}: encoder: {e}", c.name))?;
    }
    Ok(())
}

/// The models of `cams` not in `checked` are on the server and ready (the preflight, once per
/// model); `Err`: the first that is not, with the camera that names it.
fn check_models(
    base: &Args,
    cams: &BTreeMap<String, Camera>,
    checked: &mut std::collections::BTreeSet<String>,
) -> Result<(), preflight::Failure> {
    for c in cams.values() {
        let a = c.args(base);
        if checked.contains(&a.model_name) {
            continue;
        }
        preflight::preflight(&a).map_err(|f| preflight::Failure {
            code: f.code,
            message: format!("camera {:?}: model: {}", c.name, f.message),
        })?;
        checked.insert(a.model_name);
    }
    Ok(())
}

/// Starts the API (`API_ADDR`) and the metrics port (`METRICS_PORT`) on a runtime of their own;
/// `Err`: the setting that cannot work, named.
fn http(
    base: &Args,
    file: &str,
    board: &Board,
    events: &Arc<Events>,
) -> Result<tokio::runtime::Runtime, String> {
    let token = api::token(base)?;
    let addr = api::address(base, token.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("api")
        .enable_all()
        .build()
        .map_err(|e| format!("the API's runtime: {e}"))?;
    let shared = Arc::new(api::Api::new(
        file.into(),
        board.clone(),
        base.clone(),
        token,
        events.clone(),
    ));
    if let Some(addr) = addr {
        let bound = api::serve(&rt, addr, api::router(shared.clone())).map_err(|e| {
            format!("API_ADDR: cannot listen on {addr}: {e} (API_ADDR=off turns the API off)")
        })?;
        say(format_args!("API on http://{bound}/api/cameras"));
    }
    if let Some(port) = base.metrics_port {
        let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
        let bound = api::serve(&rt, addr, api::metrics_router(shared))
            .map_err(|e| format!("METRICS_PORT: cannot listen on {port}: {e}"))?;
        say(format_args!(
            "metrics on http://0.0.0.0:{}/metrics",
            bound.port()
        ));
    }
    Ok(rt)
}

/// Runs the cameras of `file` until SIGINT/SIGTERM; returns the exit code.
pub fn run(base: &Args, file: &str) -> i32 {
    // SIGHUP first: one that comes while the server is checked is a reload, not the end.
    signals::install_reload();
    let (text, wanted) = match read(file, base) {
        Ok(r) => r,
        Err(e) => {
            say(e);
            return 2;
        }
    };
    // The server and each model once, before anything starts.
    let mut checked = std::collections::BTreeSet::new();
    say(format_args!(
        "checking the server and the models of {} cameras",
        wanted.len()
    ));
    if let Err(f) = check_models(base, &wanted, &mut checked) {
        say(f.message);
        return f.code;
    }
    signals::install(true);
    let board: Board = Default::default();
    // The API and the metrics port: their own runtime, kept for the whole run.
    let events: Arc<Events> = Default::default();
    let http = match http(base, file, &board, &events) {
        Ok(rt) => rt,
        Err(e) => {
            say(e);
            return 2;
        }
    };
    let (tx, rx) = mpsc::channel();
    let mut fleet = Fleet {
        base,
        board,
        wanted: BTreeMap::new(),
        running: BTreeMap::new(),
        done: BTreeMap::new(),
        retry_at: BTreeMap::new(),
        started: Default::default(),
        generation: 0,
        tx,
        events,
    };
    fleet.want(wanted);
    say(format_args!("{} cameras from {file}", fleet.wanted.len()));
    let mut last = Some(text);
    let mut next_read = Instant::now() + RELOAD_EVERY;
    let mut stopping = false;
    loop {
        if signals::stop_requested() && !stopping {
            say("stopping every camera, finishing the files (again to abort)");
            stopping = true;
            fleet.want(BTreeMap::new());
        }
        let hup = !stopping && signals::take_reload();
        if !stopping && (hup || Instant::now() >= next_read) {
            next_read = Instant::now() + RELOAD_EVERY;
            // Read every time, checked only when it changed (or on SIGHUP, which also checks a
            // version refused before again, e.g. for a server that was away); each problem is
            // said once per version of the file (or once while it cannot be read), the running
            // cameras kept meanwhile.
            match std::fs::read_to_string(file) {
                Ok(t) if !hup && last.as_ref() == Some(&t) => {}
                Ok(t) => {
                    let checked_cams = parse_checked(&t, base).and_then(|c| {
                        check_models(base, &c, &mut checked)
                            .map(|()| c)
                            .map_err(|f| f.message)
                    });
                    match checked_cams {
                        Ok(cams) => {
                            say(format_args!("{file} changed: {} cameras", cams.len()));
                            fleet.want(cams);
                        }
                        Err(e) => say(format_args!(
                            "CAMERAS_FILE: {file}: {e}; the running cameras are kept"
                        )),
                    }
                    last = Some(t);
                }
                Err(e) if last.is_some() => {
                    say(format_args!(
                        "CAMERAS_FILE: {file}: {e}; the running cameras are kept"
                    ));
                    last = None;
                }
                Err(_) => {}
            }
        }
        fleet.reconcile();
        if stopping && fleet.running.is_empty() {
            drop(http);
            return 0;
        }
        if let Ok(note) = rx.recv_timeout(Duration::from_millis(200)) {
            fleet.handle(note);
            while let Ok(note) = rx.try_recv() {
                fleet.handle(note);
            }
        }
    }
}
