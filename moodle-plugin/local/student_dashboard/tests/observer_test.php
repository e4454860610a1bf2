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

namespace local_student_dashboard;

use local_student_dashboard\local\signer;
use local_student_dashboard\task\send_event;

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once(__DIR__ . '/fixtures/testable_send_event.php');

/**
 * Tests of the observers, the queued task and the signed request.
 *
 * @package    local_student_dashboard
 * @category   test
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_student_dashboard\observer
 * @covers     \local_student_dashboard\task\send_event
 */
final class observer_test extends \advanced_testcase {

    /** @var string A fake secret for the tests. */
    public const SECRET = 'example-key-not-a-secret';

    /**
     * Configure the receiver.
     */
    protected function configure(): void {
        set_config('receiverurl', 'https://sync.example.edu/v1/events/moodle/', 'local_student_dashboard');
        set_config('hmacsecret', self::SECRET, 'local_student_dashboard');
    }

    /**
     * The queued send_event tasks.
     *
     * @return send_event[]
     */
    protected function queued(): array {
        return array_values(\core\task\manager::get_adhoc_tasks(send_event::class));
    }

    /**
     * Nothing is queued while the receiver is not configured.
     */
    public function test_not_configured(): void {
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $user = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, 'student');
        $this->assertSame([], $this->queued());
    }

    /**
     * An enrolment queues a task; running it posts the signed body of the enrolment shape (docs/plugin-contract.md, section 9).
     */
    public function test_enrolment_sends_signed_event(): void {
        $this->resetAfterTest();
        $this->configure();
        $course = $this->getDataGenerator()->create_course();
        $user = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, 'student');

        $tasks = $this->queued();
        $this->assertCount(1, $tasks);
        $data = $tasks[0]->get_custom_data();
        $this->assertSame('enrollment', $data->kind);
        $this->assertMatchesRegularExpression('/^moodle-[0-9a-f-]{36}$/', $data->eventid);

        $task = new testable_send_event();
        $task->curl = new recording_curl();
        $task->set_custom_data($data);
        $this->expectOutputRegex('/sent event moodle-/');
        $task->execute();

        $this->assertCount(1, $task->curl->requests);
        $request = $task->curl->requests[0];
        $this->assertSame('https://sync.example.edu/v1/events/moodle/enrollment', $request['url']);
        $body = json_decode($request['body'], true);
        $this->assertSame($data->eventid, $body['eventid']);
        $this->assertSame('\core\event\user_enrolment_created', $body['eventname']);
        $this->assertSame((int) $course->id, $body['courseid']);
        $this->assertSame((int) $user->id, $body['userid']);
        $this->assertContains('X-Moodle-Signature: ' . (new signer(self::SECRET))->sign($request['body']), $request['headers']);
        $this->assertContains('Content-Type: application/json', $request['headers']);
    }

    /**
     * A non-2xx answer throws, so the task system retries.
     */
    public function test_failure_is_retried(): void {
        $this->resetAfterTest();
        $this->configure();
        $course = $this->getDataGenerator()->create_course();
        $user = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, 'student');

        $task = new testable_send_event();
        $task->curl = new recording_curl();
        $task->curl->httpcode = 500;
        $task->set_custom_data($this->queued()[0]->get_custom_data());
        $this->expectException(\moodle_exception::class);
        $task->execute();
    }

    /**
     * Through the task runner with Moodle's mocked curl: the task completes and leaves the queue.
     */
    public function test_run_with_mock_response(): void {
        $this->resetAfterTest();
        $this->configure();
        $course = $this->getDataGenerator()->create_course();
        $user = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, 'student');
        \curl::mock_response('{"success":true,"message":"Event accepted for processing","status":"queued"}');
        $this->expectOutputRegex('/HTTP 200/');
        $this->runAdhocTasks(send_event::class);
        $this->assertSame([], $this->queued());
    }

    /**
     * Unenrolment and suspension are sent too.
     */
    public function test_enrolment_updated_and_deleted(): void {
        global $DB;
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $user = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, 'student');
        $this->configure();
        $instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual']);
        $plugin = enrol_get_plugin('manual');
        $plugin->update_user_enrol($instance, $user->id, ENROL_USER_SUSPENDED);
        $plugin->unenrol_user($instance, $user->id);
        $names = array_map(fn($task) => $task->get_custom_data()->payload->eventname, $this->queued());
        $this->assertEqualsCanonicalizing(['\core\event\user_enrolment_updated', '\core\event\user_enrolment_deleted'], $names);
    }

    /**
     * A course total grade queues a grade event carrying the current grade; other items do not.
     */
    public function test_grade_event(): void {
        global $CFG;
        require_once($CFG->libdir . '/gradelib.php');
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $user = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, 'student');
        $item = $this->getDataGenerator()->create_grade_item(['courseid' => $course->id]);
        $this->configure();

        \grade_item::fetch(['id' => $item->id])->update_final_grade($user->id, 50, 'test');
        $this->assertSame([], $this->queued(), 'an activity grade is not sent');

        \grade_item::fetch_course_item($course->id)->update_final_grade($user->id, 85.5, 'test');
        $tasks = $this->queued();
        $this->assertCount(1, $tasks);

        $task = new testable_send_event();
        $task->curl = new recording_curl();
        $task->set_custom_data($tasks[0]->get_custom_data());
        $this->expectOutputRegex('/sent event/');
        $task->execute();
        $request = $task->curl->requests[0];
        $this->assertSame('https://sync.example.edu/v1/events/moodle/grade', $request['url']);
        $body = json_decode($request['body'], true);
        $this->assertSame('grade_updated', $body['event_type']);
        $this->assertSame('grade', $body['entity_type']);
        $this->assertSame((int) $user->id, $body['student_id']);
        $this->assertSame((int) $course->id, $body['course_id']);
        $this->assertEqualsWithDelta(85.5, $body['grade'], 0.00001);
    }
    /**
     * A user holding local/student_dashboard:manage by a role at system level, as the docs set up the sync user.
     *
     * @return \stdClass
     */
    protected function create_sync_user(): \stdClass {
        $user = $this->getDataGenerator()->create_user();
        $roleid = $this->getDataGenerator()->create_role(['shortname' => 'zmsynctest']);
        $system = \context_system::instance();
        assign_capability('local/student_dashboard:manage', CAP_ALLOW, $roleid, $system->id);
        role_assign($roleid, $user->id, $system->id);
        accesslib_clear_all_caches_for_unit_testing();
        return $user;
    }

    /**
     * The enrolment events triggered while enrolling one user as the given acting user.
     *
     * @param \stdClass $actor Who makes the change.
     * @return \core\event\base The user_enrolment_created event.
     */
    protected function enrolment_event_by(\stdClass $actor): \core\event\base {
        $course = $this->getDataGenerator()->create_course();
        $student = $this->getDataGenerator()->create_user();
        $this->setUser($actor);
        $sink = $this->redirectEvents();
        $this->getDataGenerator()->enrol_user($student->id, $course->id, 'student');
        $events = array_values(array_filter($sink->get_events(),
            fn($event) => $event instanceof \core\event\user_enrolment_created));
        $sink->close();
        $this->assertCount(1, $events);
        return $events[0];
    }

    /**
     * The sync user's web-service change is its own; a teacher's, an admin's or a non-web-service change is not.
     */
    public function test_is_sync_change(): void {
        $this->resetAfterTest();
        $sync = $this->create_sync_user();
        $teacher = $this->getDataGenerator()->create_user();

        $event = $this->enrolment_event_by($sync);
        $this->assertTrue(observer::is_sync_change($event, true), 'the sync user through a web service');
        $this->assertFalse(observer::is_sync_change($event, false), 'the sync user outside a web service');

        $this->assertFalse(observer::is_sync_change($this->enrolment_event_by($teacher), true), 'another user');
        $this->assertFalse(observer::is_sync_change($this->enrolment_event_by(get_admin()), true), 'a site admin');

        set_config('skipsyncchanges', 0, 'local_student_dashboard');
        $this->assertFalse(observer::is_sync_change($event, true), 'the setting is off');
    }

    /**
     * In a web-service request, the sync user's enrolment queues nothing; another user's still does.
     *
     * @runInSeparateProcess
     */
    public function test_sync_user_enrolment_is_not_queued(): void {
        define('WS_SERVER', true);
        $this->resetAfterTest();
        $this->configure();
        $sync = $this->create_sync_user();
        $course = $this->getDataGenerator()->create_course();
        $students = [$this->getDataGenerator()->create_user(), $this->getDataGenerator()->create_user()];

        $this->setUser($sync);
        $this->getDataGenerator()->enrol_user($students[0]->id, $course->id, 'student');
        $this->assertSame([], $this->queued());

        $this->setUser($this->getDataGenerator()->create_user());
        $this->getDataGenerator()->enrol_user($students[1]->id, $course->id, 'student');
        $this->assertCount(1, $this->queued());
    }
}
