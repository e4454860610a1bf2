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

namespace local_student_dashboard\local;

/**
 * Tests of the finance summary arithmetic.
 *
 * @package    local_student_dashboard
 * @category   test
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_student_dashboard\local\finance_summary
 * @covers     \local_student_dashboard\local\money
 */
final class finance_summary_test extends \basic_testcase {

    /**
     * The example student: $10,000, 20% scholarship, three payments of $2,000 paid, one due.
     */
    public function test_domain_example(): void {
        $registrations = [['zohoid' => 'R1', 'totalfee' => '10000.00', 'scholarshippercent' => '20.00', 'currency' => 'USD']];
        $payments = [];
        foreach (['Paid', 'Paid', 'Paid', 'Due'] as $status) {
            $payments[] = ['registrationzohoid' => 'R1', 'amount' => '2000.00', 'status' => $status];
        }
        $totals = (new finance_summary($registrations, $payments))->totals();
        $this->assertCount(1, $totals);
        $this->assertSame(1000000, $totals[0]['totalfee']);
        $this->assertSame(200000, $totals[0]['scholarship']);
        $this->assertSame(800000, $totals[0]['net']);
        $this->assertSame(600000, $totals[0]['paid']);
        $this->assertSame(200000, $totals[0]['remaining']);
        $this->assertSame(2000, $totals[0]['scholarshippercent']);
    }

    /**
     * Money never goes through a float.
     */
    public function test_money(): void {
        $this->assertSame(1950, money::parse('19.5'));
        $this->assertNull(money::parse('1,000'));
        $this->assertSame('0.30', money::format(money::parse('0.1') + money::parse('0.2')));
        $this->assertSame('20.00', money::normalise('20.00000'));
    }
}
