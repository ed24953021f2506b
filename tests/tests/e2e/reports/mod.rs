//! Report storage: the conformance suite every backend passes, and Sparky's reports
//! (live logs, artifacts, `report.json`, retention, outages) on the folder backend and
//! on S3 (a real `moto_server` process).

mod browser;
mod builds;
mod conformance;
mod outage;
mod setup;
