//! Cron: PingSource ticks on `POST /events/cron`, and `sparky up`'s own ticker.

use std::time::Duration;

use serde_json::{Value, json};
use sparky_tests::{Api, Sparky, free_port, history_row, ping_request, write_project};

fn ids(builds: &Value) -> Vec<i64> {
    builds["builds"]
        .as_array()
        .map(|b| b.iter().filter_map(|b| b["id"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn ticks_queue_matching_projects_exactly_once_per_minute() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        "quarterly",
        "crontab: '*/15 * * * *'\nscript: echo \"cron build by $SPARKY_TRIGGER\"\n",
    );
    write_project(dir.path(), "morning", "crontab: '0 9 * * 1-5'\nscript: echo\n");
    write_project(dir.path(), "tokyo", "crontab: '0 9 * * *'\ntimezone: Asia/Tokyo\nscript: echo\n");
    write_project(dir.path(), "off", "crontab: '* * * * *'\ndisabled: true\nscript: echo\n");
    write_project(dir.path(), "typo", "crontab: '0 9 * * 8'\nscript: echo\n");
    // Ticks on the test's own clock: any minute of any day.
    let sparky = Sparky::up(dir.path(), &[("SPARKY_TICK_WINDOW", "off")]);
    let api = Api::new(&sparky.url);

    // Wednesday 2026-11-25 00:15 UTC is 09:15 in Tokyo: only `quarterly` matches.
    let reply = api.send(ping_request(&api, "/events/cron", "2026-11-25T00:15:00Z", "tick-1")).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["minute"], "2026-11-25T00:15:00+00:00");
    let queued: Vec<&str> =
        reply.json["cron"].as_array().expect("cron").iter().filter_map(|q| q["project"].as_str()).collect();
    assert_eq!(queued, ["quarterly"]);
    let id = reply.json["cron"][0]["build_id"].as_i64().expect("id");
    let build = api.wait_for(id, None, Duration::from_secs(10)).await;
    assert_eq!((build["status"].as_str(), build["trigger"].as_str()), (Some("succeeded"), Some("cron")));
    assert_eq!(api.log(id).await, "cron build by cron\n");
    // History says what started it: cron, and which crontab line.
    let row = history_row(&api.get_text("/builds").await.1, id);
    assert!(
        row.contains(r#"<span class="trigger">cron</span> <span class="who">cron */15 * * * *</span>"#),
        "{row}"
    );

    // The same tick again, a structured-mode copy with another id, and ticks delivered
    // concurrently: still one build for the minute.
    let again = api.send(ping_request(&api, "/events/cron", "2026-11-25T00:15:00Z", "tick-1")).await;
    assert_eq!(again.json["cron"][0]["new"], false);
    let structured = api
        .send(api.http.post(api.url("/events/cron")).header("content-type", "application/cloudevents+json").body(
            json!({"specversion": "1.0", "type": "dev.knative.sources.ping", "source": "/other-pingsource",
                   "id": "tick-2", "time": "2026-11-25T00:15:42Z", "data": {}})
            .to_string(),
        ))
        .await;
    assert_eq!(structured.status, 200, "{}", structured.json);
    assert_eq!(
        (structured.json["cron"][0]["build_id"].as_i64(), structured.json["cron"][0]["new"].as_bool()),
        (Some(id), Some(false))
    );
    let mut ticks = Vec::new();
    for n in 0..8 {
        let api = api.clone();
        ticks.push(tokio::spawn(async move {
            api.send(ping_request(&api, "/events/cron", "2026-11-25T00:30:10Z", &format!("c{n}"))).await.json
        }));
    }
    let mut new = 0;
    for tick in ticks {
        let answer = tick.await.expect("tick");
        new += answer["cron"].as_array().expect("cron").iter().filter(|q| q["new"] == true).count();
    }
    assert_eq!(new, 1, "concurrent deliveries of one minute queue one build");
    assert_eq!(ids(&api.get("/api/v1/projects/quarterly/builds").await.json).len(), 2);

    // 00:00 UTC on Wednesday is 09:00 in Tokyo and also a quarter hour; Monday-to-Friday
    // at 09:00 UTC matches `morning`.
    let reply = api.send(ping_request(&api, "/events/cron", "2026-11-25T00:00:00Z", "t3")).await;
    let mut queued: Vec<&str> =
        reply.json["cron"].as_array().expect("cron").iter().filter_map(|q| q["project"].as_str()).collect();
    queued.sort();
    assert_eq!(queued, ["quarterly", "tokyo"]);
    let reply = api.send(ping_request(&api, "/events/cron", "2026-11-25T09:00:00Z", "t4")).await;
    let queued: Vec<&str> =
        reply.json["cron"].as_array().expect("cron").iter().filter_map(|q| q["project"].as_str()).collect();
    assert_eq!(queued, ["morning", "quarterly"]);
    // Saturday 09:00: not `morning`.
    let reply = api.send(ping_request(&api, "/events/cron", "2026-11-28T09:00:00Z", "t5")).await;
    let queued: Vec<&str> =
        reply.json["cron"].as_array().expect("cron").iter().filter_map(|q| q["project"].as_str()).collect();
    assert_eq!(queued, ["quarterly"]);

    // The project page tells when a project runs next, in its own time zone, and
    // which of its builds each trigger kind started last.
    let tokyo = api.get("/api/v1/projects/tokyo").await.json;
    let next: Vec<&str> = tokyo["triggers"]["cron"]["next"]
        .as_array()
        .expect("next")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(next.len(), 3);
    assert!(next.iter().all(|t| t.ends_with("T09:00:00+09:00")), "{next:?}");
    assert_eq!(tokyo["triggers"]["last_by_trigger"]["cron"]["trigger"], "cron");
    let (_, page) = api.get_text("/projects/tokyo").await;
    assert!(page.contains("09:00 JST") && page.contains("Asia&#x2f;Tokyo"), "next runs on the page");

    // An invalid crontab is that project's error, naming the expression.
    let typo = api.get("/api/v1/projects/typo").await;
    let error = typo.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("crontab \"0 9 * * 8\"") && error.contains("line 1"), "{error}");
    // Not a CloudEvent: refused, nothing queued.
    let bad = api.post("/events/cron").await;
    assert_eq!(bad.status, 400);
    assert!(bad.json["error"].as_str().unwrap_or_default().contains("ce-specversion"), "{}", bad.json);
}

#[tokio::test]
async fn overlapping_ping_sources_on_two_trigger_processes_queue_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "every", "crontab: '* * * * *'\nscript: echo\n");
    let env = [("SPARKY_SQLITE_JOURNAL", "delete"), ("SPARKY_TICK_WINDOW", "off")];
    let a = Sparky::serve("trigger", free_port(), dir.path(), &env);
    let b = Sparky::serve("trigger", free_port(), dir.path(), &env);
    let apis = [Api::new(&a.url), Api::new(&b.url)];
    let mut ticks = Vec::new();
    for n in 0..10 {
        let api = apis[n % 2].clone();
        ticks.push(tokio::spawn(async move {
            let minute = ["2026-11-25T10:00:00Z", "2026-11-25T10:01:00Z"][n % 4 / 2];
            api.send(ping_request(&api, "/events/cron", minute, &format!("p{n}"))).await
        }));
    }
    let mut new = 0;
    for tick in ticks {
        let reply = tick.await.expect("tick");
        assert_eq!(reply.status, 200, "{}", reply.json);
        new += reply.json["cron"].as_array().expect("cron").iter().filter(|q| q["new"] == true).count();
    }
    assert_eq!(new, 2, "two minutes, one build each");
}

#[tokio::test]
async fn a_tick_far_from_the_clock_or_of_another_type_queues_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "every", "crontab: '* * * * *'\nscript: echo\n");
    let trigger = Sparky::serve("trigger", free_port(), dir.path(), &[("SPARKY_SQLITE_JOURNAL", "delete")]);
    let api = Api::new(&trigger.url);
    let stale = api.send(ping_request(&api, "/events/cron", "2020-01-01T00:05:00Z", "old")).await;
    assert_eq!(stale.status, 422, "{}", stale.json);
    let error = stale.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("SPARKY_TICK_WINDOW") && error.contains("not caught up"), "{error}");
    let early = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    assert_eq!(api.send(ping_request(&api, "/events/cron", &early, "early")).await.status, 422);
    let other = api.http.post(api.url("/events/cron")).header("ce-specversion", "1.0");
    let other =
        other.header("ce-type", "com.example.something").header("ce-source", "/x").header("ce-id", "o");
    let other = api.send(other).await;
    assert_eq!(other.status, 400, "{}", other.json);
    assert!(other.json["error"].as_str().unwrap_or_default().contains("dev.knative.sources.ping"));
    assert!(ids(&api.get("/api/v1/projects/every/builds").await.json).is_empty(), "nothing queued");
    // A tick a few minutes late, as a retried delivery may be, still counts.
    let late = (chrono::Utc::now() - chrono::Duration::minutes(3)).to_rfc3339();
    let reply = api.send(ping_request(&api, "/events/cron", &late, "late")).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["cron"][0]["project"], "every");
}

#[tokio::test]
async fn sparky_up_ticks_by_itself_every_minute() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "every", "crontab: '* * * * *'\nscript: echo tick\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let deadline = std::time::Instant::now() + Duration::from_secs(70);
    loop {
        let builds = api.get("/api/v1/projects/every/builds").await.json;
        if let Some(build) = builds["builds"].as_array().and_then(|b| b.first()) {
            assert_eq!(build["trigger"], "cron");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no cron build within 70 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
