// Sample: the two-step refresh driven by a coroutine, so the network request is a
// UnityWebRequest (your proxy settings, your certificate handler, WebGL-friendly scheduling) and
// the main thread never blocks. The vault still decides whether a refresh is needed, makes sure
// only one runs at a time, parses the answer and stores the new pair durably.
//
// Import it from the Package Manager window (tokenvault > Samples), then:
//   StartCoroutine(refresher.EnsureFresh("player-1", token => api.Authorize(token)));

using System;
using System.Collections;
using System.Collections.Generic;
using Tokenvault;
using UnityEngine;
using UnityEngine.Networking;

public sealed class TokenRefresher : MonoBehaviour
{
    public TokenVault Vault; // opened at start-up with the key from the platform's secure storage

    /// <summary>Hands a valid access token to <paramref name="use"/>, refreshing it with
    /// UnityWebRequest first when the vault says it is due. <paramref name="force"/> after a 401.</summary>
    public IEnumerator EnsureFresh(string account, Action<string> use, bool force = false)
    {
        RefreshAttempt attempt = Vault.BeginRefresh(account, force); // never blocks on the network
        while (attempt.Step == RefreshStep.InFlight)
        {
            yield return null; // someone else is refreshing this account: look again next frame
            attempt = Vault.BeginRefresh(account, force);
        }
        if (attempt.Step == RefreshStep.Fresh)
        {
            use(Vault.AccessToken(account)); // cached: ~100 ns, no network
            yield break;
        }

        RefreshRequest req = attempt.Request; // contains credentials: never log it
        using (var www = new UnityWebRequest(req.Url, req.Method))
        {
            www.uploadHandler = new UploadHandlerRaw(req.Body) { contentType = req.Header("Content-Type") };
            www.downloadHandler = new DownloadHandlerBuffer();
            www.redirectLimit = 0; // a refresh must never follow redirects
            www.timeout = Math.Max(1, (int)Math.Ceiling(req.Timeout.TotalSeconds));
            foreach (KeyValuePair<string, string> h in req.Headers)
                if (!string.Equals(h.Key, "Content-Type", StringComparison.OrdinalIgnoreCase))
                    www.SetRequestHeader(h.Key, h.Value);

            yield return www.SendWebRequest();

            string token;
            try
            {
                if (www.result == UnityWebRequest.Result.ConnectionError)
                    // The session is kept; while the old token is valid (and not forced) you get it back.
                    token = Vault.FailRefresh(attempt, www.error != null && www.error.Contains("timeout")
                        ? TransportFailure.Timeout : TransportFailure.Connect);
                else
                    // Any HTTP status is an answer: the vault's profile interprets 4xx/5xx.
                    token = Vault.FinishRefresh(attempt, (int)www.responseCode,
                        www.GetResponseHeaders(), www.downloadHandler.data);
            }
            catch (ReauthenticationRequiredException)
            {
                ShowLoginScreen(); // the refresh credential is dead: the player must sign in again
                yield break;
            }
            catch (TransientException e)
            {
                Debug.LogWarning("token refresh failed, will retry: " + e.Message); // no secrets in messages
                yield break;
            }
            use(token);
        }
    }

    private void ShowLoginScreen() { /* your sign-in flow; then Vault.Store(new Session { ... }) */ }
}
