<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\task;

use local_student_dashboard\local\event_payload;
use local_student_dashboard\local\signer;

/**
 * Ad-hoc task: POST one signed event to the zmsync receiver.
 *
 * Any failure (transport error, blocked URL, non-2xx answer) throws, so the task system retries the task
 * with a growing delay. The event id was fixed when the event was queued, so retries carry the same id.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class send_event extends \core\task\adhoc_task {

    /** @var int Seconds allowed for the whole request. */
    public const TIMEOUT = 20;

    /**
     * The task's name.
     *
     * @return string
     */
    public function get_name(): string {
        return get_string('task:sendevent', 'local_student_dashboard');
    }

    /**
     * Send the event.
     *
     * @throws \moodle_exception When the receiver did not accept it.
     */
    public function execute() {
        $config = get_config('local_student_dashboard');
        if (empty($config->receiverurl) || empty($config->hmacsecret)) {
            mtrace('local_student_dashboard: no receiver URL or secret configured, event dropped');
            return;
        }
        $data = (array) $this->get_custom_data();
        $kind = (string) ($data['kind'] ?? '');
        $url = event_payload::url($config->receiverurl, $kind);
        $body = event_payload::encode($this->build_payload($data));
        $signer = new signer($config->hmacsecret);

        $curl = $this->create_curl();
        $curl->setHeader(['Content-Type: application/json', $signer->header($body)]);
        $response = $curl->post($url, $body, [
            'CURLOPT_TIMEOUT' => self::TIMEOUT,
            'CURLOPT_CONNECTTIMEOUT' => 10,
        ]);
        $info = $curl->get_info();
        $httpcode = (int) ($info['http_code'] ?? 0);
        if ($curl->get_errno() || $httpcode < 200 || $httpcode >= 300) {
            throw new \moodle_exception('eventsendfailed', 'local_student_dashboard', '', (object) [
                'eventid' => $data['eventid'] ?? '',
                'url' => $url,
                'httpcode' => $httpcode,
                'error' => $curl->error ?: \core_text::substr(trim((string) $response), 0, 200),
            ]);
        }
        mtrace('local_student_dashboard: sent event ' . ($data['eventid'] ?? '') . ' to ' . $url . ' (HTTP ' . $httpcode . ')');
    }

    /**
     * Build the body of the event: enrolment bodies are fixed when queued, grade bodies carry the current grade.
     *
     * @param array $data The task's custom data.
     * @return array
     */
    public function build_payload(array $data): array {
        global $DB;

        if (($data['kind'] ?? '') === event_payload::KIND_ENROLMENT) {
            return (array) $data['payload'];
        }
        if (($data['kind'] ?? '') === event_payload::KIND_GRADE) {
            $finalgrade = $DB->get_field('grade_grades', 'finalgrade', ['id' => $data['gradeid']]);
            return event_payload::grade((string) $data['eventid'], (int) $data['gradeid'], (int) $data['userid'],
                (int) $data['courseid'], ($finalgrade === false || $finalgrade === null) ? null : (float) $finalgrade);
        }
        throw new \coding_exception('Unknown event kind: ' . ($data['kind'] ?? ''));
    }

    /**
     * The HTTP client: Moodle's curl, honouring the site's proxy and HTTP security settings.
     *
     * @return \curl
     */
    protected function create_curl(): \curl {
        global $CFG;
        require_once($CFG->libdir . '/filelib.php');
        return new \curl();
    }
}
