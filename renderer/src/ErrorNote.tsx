/** How a failed call is shown: the error's sentence, announced to screen readers. */
import type { StasisErrorData } from '../../shared/errors';

export function ErrorNote({ error, onRetry }: { error: StasisErrorData; onRetry?: () => void }) {
  return (
    <div className="error-note" role="alert">
      <p><strong>{error.code}</strong>: {error.message}</p>
      {onRetry ? <button type="button" onClick={onRetry}>Try again</button> : null}
    </div>
  );
}
