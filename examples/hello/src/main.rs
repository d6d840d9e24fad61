//! `hello`: a complete Janus competitor. Streaming, keep-alives, health and errors come
//! from the SDK; the handler only says what to answer.
use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, EventWriter, RequestContext,
    RunError,
};

struct Hello;

#[async_trait]
impl Competitor for Hello {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        _context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let said = request.last_user_text().unwrap_or_default();
        out.reasoning("Thinking of a greeting.\n").await?;
        out.content(&format!("Hello! You said: {said}")).await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), RunError> {
    janus_competitor_sdk::run(Hello).await
}
