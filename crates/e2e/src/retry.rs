//! Polling until a check passes, as upstream's e2e suite does with `Eventually`.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

/// The deadline of each "get" case (upstream: 60 s).
pub const GET_DEADLINE: Duration = Duration::from_secs(60);

/// The pause between attempts (upstream: 5 s).
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds or `deadline` has passed, sleeping `interval` between attempts. The
/// error is the last attempt's, with the number of attempts and the time spent.
pub async fn eventually<T, F, Fut>(
    deadline: Duration,
    interval: Duration,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => {
                if start.elapsed() + interval > deadline {
                    return Err(anyhow!(
                        "still failing after {attempts} attempt(s) over {:.0?}: {err:#}",
                        start.elapsed()
                    ));
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn eventually_returns_the_first_success() {
        let calls = Cell::new(0);
        let value = block_on(eventually(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(anyhow!("not yet"))
                    } else {
                        Ok(n)
                    }
                }
            },
        ))
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn eventually_gives_up_with_the_last_error() {
        let err = block_on(eventually(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { Err::<(), _>(anyhow!("boom")) },
        ))
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("boom") && text.contains("attempt"), "{text}");
    }
}
