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

namespace local_student_dashboard\external;

use core_external\external_api;

/**
 * Tests of the row web services: upsert, delete and get of each type, and get_info.
 *
 * @package    local_student_dashboard
 * @category   test
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_student_dashboard\external\upsert_rows
 * @covers     \local_student_dashboard\external\delete_rows
 * @covers     \local_student_dashboard\external\get_rows
 * @covers     \local_student_dashboard\external\get_info
 * @covers     \local_student_dashboard\local\repository
 * @covers     \local_student_dashboard\local\sync_clock
 */
final class rows_test extends \advanced_testcase {

    /**
     * Log in as a user holding local/student_dashboard:manage, like the sync's user.
     *
     * @return \stdClass The user.
     */
    protected function set_sync_user(): \stdClass {
        $user = $this->getDataGenerator()->create_user();
        $roleid = $this->getDataGenerator()->create_role();
        $system = \context_system::instance();
        assign_capability('local/student_dashboard:manage', CAP_ALLOW, $roleid, $system->id);
        role_assign($roleid, $user->id, $system->id);
        $this->setUser($user);
        return $user;
    }

    /**
     * A valid registration row for a student.
     *
     * @param int $userid The student.
     * @param string $zohoid The Zoho id.
     * @return array
     */
    protected static function registration(int $userid, string $zohoid): array {
        return [
            'zoho_id' => $zohoid,
            'userid' => $userid,
            'student_zoho_id' => '5847596000012345',
            'program' => 'BTEC Level 5 Diploma in IT',
            'registration_date' => '2025-09-01',
            'total_fee' => '10000',
            'scholarship_percent' => '20',
            'currency' => 'USD',
            'status' => 'Active',
        ];
    }

    /**
     * Create, then unchanged, then updated; bad rows become warnings while the others apply.
     */
    public function test_upsert_registrations(): void {
        global $DB;
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user();
        $this->set_sync_user();

        $rows = [self::registration($student->id, '5847596000020001'), self::registration($student->id, '5847596000020002')];
        $result = external_api::clean_returnvalue(upsert_registrations::execute_returns(), upsert_registrations::execute($rows));
        $this->assertSame(2, $result['created']);
        $this->assertSame([], $result['warnings']);
        $this->assertSame('created', $result['results'][0]['status']);
        $record = $DB->get_record('local_student_dashboard_reg', ['zohoid' => '5847596000020001']);
        $this->assertEquals(10000, $record->totalfee);
        $this->assertEquals($student->id, $record->userid);

        // The same rows again: nothing changes.
        $result = external_api::clean_returnvalue(upsert_registrations::execute_returns(), upsert_registrations::execute($rows));
        $this->assertSame(0, $result['created']);
        $this->assertSame(2, $result['unchanged']);

        // One changed, one bad user, one invalid date, one duplicate.
        $changed = self::registration($student->id, '5847596000020001');
        $changed['scholarship_percent'] = '25';
        $baduser = self::registration(999999, '5847596000020003');
        $baddate = self::registration($student->id, '5847596000020004');
        $baddate['registration_date'] = '2026-02-30';
        $result = external_api::clean_returnvalue(upsert_registrations::execute_returns(),
            upsert_registrations::execute([$changed, $baduser, $baddate, $changed]));
        $this->assertSame(1, $result['updated']);
        $this->assertSame(['invaliduserid', 'invaliddate', 'duplicatezohoid'], array_column($result['warnings'], 'warningcode'));
        $this->assertSame([1, 2, 3], array_column($result['warnings'], 'itemid'));
        $this->assertSame('5847596000020003', $result['warnings'][0]['item']);
        $this->assertEquals(25, $DB->get_field('local_student_dashboard_reg', 'scholarshippercent', ['zohoid' => '5847596000020001']));
        $this->assertSame(2, $DB->count_records('local_student_dashboard_reg'));
    }

    /**
     * Payments, units and grades follow the same rules; get returns the contract's shapes.
     */
    public function test_other_types_and_get(): void {
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user();
        $this->set_sync_user();

        $result = upsert_payments::execute([
            ['zoho_id' => 'P1', 'userid' => $student->id, 'student_zoho_id' => 'S1', 'amount' => '2000', 'status' => 'Paid',
                'payment_date' => '2026-01-15'],
            ['zoho_id' => 'P2', 'userid' => $student->id, 'student_zoho_id' => 'S1', 'amount' => '2000', 'status' => 'paid'],
        ]);
        $this->assertSame(1, $result['created']);
        $this->assertSame('invalidstatus', $result['warnings'][0]['warningcode']);

        $result = upsert_units::execute([['zoho_id' => 'U1', 'unit_code' => 'Unit 1', 'unit_name' => 'Programming']]);
        $this->assertSame(1, $result['created']);

        $result = upsert_grades::execute([
            ['zoho_id' => 'G1', 'userid' => $student->id, 'student_zoho_id' => 'S1', 'unit_zoho_id' => 'U1', 'grade' => 'Merit',
                'moodle_grade' => 65.5],
        ]);
        $this->assertSame(1, $result['created']);

        $page = external_api::clean_returnvalue(get_payments::execute_returns(), get_payments::execute(0, 0));
        $this->assertSame(1, $page['total']);
        $row = $page['rows'][0];
        $this->assertSame('2000.00', $row['amount']);
        $this->assertSame('2026-01-15', $row['payment_date']);
        $this->assertNull($row['due_date']);
        $this->assertSame('', $row['method']);

        $page = external_api::clean_returnvalue(get_grades::execute_returns(), get_grades::execute());
        $this->assertSame(65.5, $page['rows'][0]['moodle_grade']);
        $this->assertNull($page['rows'][0]['graded_date']);

        $page = external_api::clean_returnvalue(get_units::execute_returns(), get_units::execute(1, 10));
        $this->assertSame([], $page['rows']);
        $this->assertSame(1, $page['total']);
    }

    /**
     * Delete removes known ids and ignores unknown ones.
     */
    public function test_delete(): void {
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user();
        $this->set_sync_user();
        upsert_registrations::execute([self::registration($student->id, 'R1'), self::registration($student->id, 'R2')]);

        $result = external_api::clean_returnvalue(delete_registrations::execute_returns(),
            delete_registrations::execute(['R1', 'unknown']));
        $this->assertSame(1, $result['deleted']);
        $result = delete_registrations::execute(['R1']);
        $this->assertSame(0, $result['deleted']);
        $this->assertSame(1, get_registrations::execute()['total']);
    }

    /**
     * More than 500 rows in one call is refused.
     */
    public function test_batch_limit(): void {
        $this->resetAfterTest();
        $this->set_sync_user();
        $this->expectException(\moodle_exception::class);
        $this->expectExceptionMessageMatches('/at most 500/');
        delete_units::execute(array_map(fn(int $i): string => 'U' . $i, range(1, 501)));
    }

    /**
     * Without the manage capability every function is refused.
     */
    public function test_requires_manage(): void {
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user();
        $this->setUser($student);
        $this->expectException(\required_capability_exception::class);
        upsert_registrations::execute([self::registration($student->id, 'R1')]);
    }

    /**
     * Unexpected keys fail the whole call, as in every Moodle web service.
     */
    public function test_unexpected_key(): void {
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user();
        $this->set_sync_user();
        $row = self::registration($student->id, 'R1') + ['colour' => 'red'];
        $this->expectException(\invalid_parameter_exception::class);
        upsert_registrations::execute([$row]);
    }

    /**
     * get_info returns the versions.
     */
    public function test_get_info(): void {
        $this->resetAfterTest();
        $this->set_sync_user();
        $info = external_api::clean_returnvalue(get_info::execute_returns(), get_info::execute());
        $this->assertSame('local_student_dashboard', $info['component']);
        $this->assertSame(1, $info['contract_version']);
        $this->assertSame((int) get_config('local_student_dashboard', 'version'), $info['version']);
    }
    /**
     * The sync's calls record when it last read or wrote the dashboard data; other callers are refused first.
     */
    public function test_calls_record_the_last_sync(): void {
        $this->resetAfterTest();
        $this->assertSame(0, \local_student_dashboard\local\sync_clock::last());
        $this->set_sync_user();
        $before = time();
        get_registrations::execute(0, 10);
        $last = \local_student_dashboard\local\sync_clock::last();
        $this->assertGreaterThanOrEqual($before, $last);
        $this->assertLessThanOrEqual(time(), $last);

        set_config('lastsync', 1, 'local_student_dashboard');
        delete_payments::execute(['5847596000099999']);
        $this->assertGreaterThanOrEqual($before, \local_student_dashboard\local\sync_clock::last());
    }
}
