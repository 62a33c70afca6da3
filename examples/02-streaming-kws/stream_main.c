/* Streaming keyword spotting in C: the same LSTM model compiled twice by nnc,
 * once for whole utterances (kws_*) and once for one frame at a time
 * (kws_stream_*, states kept by the caller). For each utterance in
 * utterances.h this program runs the whole-utterance model, then feeds the
 * frames one by one to the streaming model from reset states, and checks that
 * both give the same scores bit for bit. Exit status 0 when every utterance
 * agrees. */
#include <stdio.h>
#include <string.h>

#include "kws.h"
#include "kws_stream.h"
#include "utterances.h"

static int run_utterance(const float *utterance, int index)
{
    static float whole[KWS_OUTPUT0_SIZE];
    static float streamed[KWS_STREAM_OUTPUT0_SIZE];
    /* one buffer per state: the header allows a state's input and output to share it */
    static float h[KWS_STREAM_STATE0_SIZE];
    static float c[KWS_STREAM_STATE1_SIZE];
    int frame, best = 0, k;

    if (kws_invoke(utterance, whole) != 0) {
        return -1;
    }
    kws_stream_reset_states(h, c);
    for (frame = 0; frame < UTTERANCE_FRAMES; ++frame) {
        if (kws_stream_invoke(utterance + frame * KWS_STREAM_INPUT0_SIZE, h, c, streamed, h, c) != 0) {
            return -1;
        }
    }
    for (k = 1; k < KWS_OUTPUT0_SIZE; ++k) {
        if (whole[k] > whole[best]) {
            best = k;
        }
    }
    k = memcmp(whole, streamed, sizeof whole) == 0;
    printf("utterance %d: class %d, score %.4f; frame by frame %s the whole-utterance run\n",
           index, best, (double)whole[best], k ? "equals" : "DIFFERS FROM");
    return k;
}

int main(void)
{
    int u, agree = 0;

    for (u = 0; u < UTTERANCE_COUNT; ++u) {
        int result = run_utterance(utterances[u], u);
        if (result < 0) {
            printf("utterance %d: invoke failed\n", u);
            return 2;
        }
        agree += result;
    }
    printf("%d of %d utterances bit-exact\n", agree, UTTERANCE_COUNT);
    return agree == UTTERANCE_COUNT ? 0 : 1;
}
