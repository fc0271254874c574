"""The daily reassurance call (日常问候电话): every day, at the resident's own time, a call ("press 1 if
you are well, 2 if you need help") or an SMS ("reply 1 ... 2 ...") to a resident who consented to it.
"Well" ends the day; "help", or no answer after the retries, opens ONE incident through the alarm lane's
commit path. See docs/reassurance.md.

- `plan.py`: what is due next for one resident's day (pure), and what an answer means;
- `records.py`: the attempts in the incident store, audited;
- `speech.py`: what the resident hears or reads (TwiML, SMS texts);
- `scheduler.py`: ticks with the gateway's clock, places the calls, takes the answers, opens incidents;
- `webhooks.py`: Twilio's signed callbacks for these calls.
"""
