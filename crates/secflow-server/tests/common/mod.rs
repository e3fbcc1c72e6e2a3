//! A real server on 127.0.0.1 (random port) over a fresh state directory, for the tests.

use secflow_host::{Host, HostConfig, StateDir};
use std::time::Duration;

pub struct Server {
    pub base: String,
    pub host: Host,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _home: tempfile::TempDir,
}

impl Server {
    pub async fn start(config: secflow_server::ServerConfig) -> Server {
        let home = tempfile::tempdir().unwrap();
        let host = Host::open(HostConfig {
            state_dir: StateDir::resolve(Some(home.path())),
            actor: "test".into(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = secflow_server::AppState::open(host.acting_as("api:server"), config)
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            secflow_server::serve(
                state,
                listener,
                async {
                    let _ = stopped.await;
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        });
        Server {
            base,
            host,
            stop: Some(stop),
            task: Some(task),
            _home: home,
        }
    }

    pub async fn token(&self, role: &str) -> String {
        self.host
            .create_token(role, role, None)
            .await
            .unwrap()
            .token
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}
